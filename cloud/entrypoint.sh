#!/bin/sh
# SageMaker starts containers as `docker run IMAGE serve`; map that to `tandem cloud serve`
# and exec so the service is the process that receives SIGTERM (graceful drain).
# Models: TANDEM_MODELS if set, else AIP_STORAGE_URI (Vertex), else /opt/ml/model (SageMaker).
# TANDEM_CLI is the command that runs the CLI (default: the image's build); the tests set it
# to run this script against the sources.
set -e
CLI=${TANDEM_CLI:-node /app/bin/tandem.js}
if [ "$1" = "serve" ]; then
  shift
  if [ -n "${TANDEM_MODELS:-}" ]; then
    # shellcheck disable=SC2086 # CLI is a command line: split it into words.
    exec $CLI cloud serve --models "$TANDEM_MODELS" "$@"
  fi
  # shellcheck disable=SC2086
  exec $CLI cloud serve "$@"
fi
# shellcheck disable=SC2086
exec $CLI "$@"
