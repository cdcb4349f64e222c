#!/bin/sh
# SageMaker starts containers as `docker run IMAGE serve`; map that to `tandem cloud serve`
# and keep the process as PID 1's direct child so SIGTERM reaches it (graceful drain).
set -e
if [ "$1" = "serve" ]; then
  shift
  exec node /app/bin/tandem.js cloud serve --models "${TANDEM_MODELS:-/opt/ml/model}" "$@"
fi
exec node /app/bin/tandem.js "$@"
