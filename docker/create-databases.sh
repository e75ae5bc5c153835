#!/bin/bash
# First start of the postgres container: one database per user of it (Airflow, MLflow, Feast registry, decisions).
set -euo pipefail
for database in ${FAIRWAY_DATABASES}; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE ${database} OWNER ${POSTGRES_USER};"
done
