# The project image: Airflow 3 (official image) with Fairway's pinned environment, DAGs, package and repos.
# Used by every Airflow component, the MLflow server and the BentoML service in docker-compose.yaml.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

ARG EXTRA_PACKAGES=""
COPY --chown=airflow:root requirements.txt /opt/fairway/requirements.txt
RUN pip install --no-cache-dir -r /opt/fairway/requirements.txt ${EXTRA_PACKAGES}

COPY --chown=airflow:root pyproject.toml README.md /opt/fairway/
COPY --chown=airflow:root include /opt/fairway/include
RUN pip install --no-cache-dir --no-deps -e /opt/fairway
COPY --chown=airflow:root dags /opt/fairway/dags
COPY --chown=airflow:root plugins /opt/fairway/plugins
COPY --chown=airflow:root feature_repo /opt/fairway/feature_repo
COPY --chown=airflow:root bento /opt/fairway/bento
COPY --chown=airflow:root docker/mlflow-basic-auth.ini /opt/fairway/docker/mlflow-basic-auth.ini
# The entrypoint of every service (docker-compose.yaml): refuses the CHANGE-ME placeholders, then execs the command
COPY --chmod=0755 docker/check-secrets.sh /usr/local/bin/fairway-check-secrets

# The mount point of the fairway-home volume, owned by the image's user: a new volume takes this ownership
USER root
RUN mkdir -p /fairway && chown airflow:root /fairway && chmod 0775 /fairway
USER airflow

ENV FAIRWAY_HOME=/fairway \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/fairway/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/fairway/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    BENTOML_DO_NOT_TRACK=true
WORKDIR /opt/fairway
