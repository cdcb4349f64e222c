#!/bin/sh
# SageMaker starts containers as `docker run IMAGE serve`; map that to `tandem cloud serve`
# and exec so the service is the process that receives SIGTERM (graceful drain).
# Models: TANDEM_MODELS if set, else AIP_STORAGE_URI (Vertex), else /opt/ml/model (SageMaker).
set -e
if [ "$1" = "serve" ]; then
  shift
  if [ -n "${TANDEM_MODELS:-}" ]; then
    exec node /app/bin/tandem.js cloud serve --models "$TANDEM_MODELS" "$@"
  fi
  exec node /app/bin/tandem.js cloud serve "$@"
fi
exec node /app/bin/tandem.js "$@"
