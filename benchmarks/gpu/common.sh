# Sourced by the GPU scripts: the environment of a CUDA machine running Keras on JAX.
# Wheels missing there (keras, dask, ...) may sit in .whl/<set>/ and are installed into /tmp/site.
PY=${PYTHON:-python3}
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
# JAX grabs 75 % of the GPU by default: with Dask workers or two trainings on one GPU it must not
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
for set in "$@"; do
  if [ -z "${NO_WHEELS:-}" ] && [ -d ".whl/$set" ] && [ ! -e "/tmp/site/.installed-$set" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/$set/*.whl \
      && touch "/tmp/site/.installed-$set" || exit 1
  fi
done
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
