"""Feature store access (Feast): definitions built from the use case, partitions, materialization,
point-in-time retrieval and the data-catalogue policy."""
