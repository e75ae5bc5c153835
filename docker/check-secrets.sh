#!/bin/sh
# Entrypoint of every Compose service that takes a secret (docker-compose.yaml): it refuses to start while a
# secret still holds the placeholder of .env.example, then runs the service's command in its place (exec: the
# command keeps this process, so signals and exit codes are the command's own).
#   fairway-check-secrets COMMAND [ARG...]
# Every environment variable and every argument is checked, so a secret passed inside a URL or on the command
# line is caught too. Only the names of the variables are printed, never their values.
set -eu
placeholder="CHANGE-ME"
if [ "$#" -eq 0 ]; then
  echo "fairway-check-secrets: no command given (usage: fairway-check-secrets COMMAND [ARG...])" >&2
  exit 64
fi
found=""
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u); do
  eval "value=\${$name-}"
  case "$value" in *"$placeholder"*) found="$found $name" ;; esac
done
for argument in "$@"; do
  case "$argument" in *"$placeholder"*) found="$found, and an argument of the command"; break ;; esac
done
if [ -n "$found" ]; then
  {
    echo "fairway: refusing to start '$1': still the placeholder $placeholder of .env.example in:$found"
    echo "fairway: replace every $placeholder in .env with a real secret (e.g. 'openssl rand -hex 32'), then"
    echo "fairway: 'docker compose up -d' again. Nothing was started."
  } >&2
  exit 78
fi
exec "$@"
