# S3 test server for core's object_store adapter test (cloudsync-core/tests/objstore_s3.rs;
# sourced by scripts/install-test-deps.sh, which provides need_apt and $SUDO): moto's server
# from PyPI (`pip install 'moto[server]'`), in the venv under /opt/cloudsync-test (or
# $CLOUDSYNC_TEST_CACHE) that gdrive.sh uses too, linked as /usr/local/bin/moto_server.
need_apt python3 python3-venv
OBJSTORE_CACHE=${CLOUDSYNC_TEST_CACHE:-/opt/cloudsync-test}
if ! command -v moto_server >/dev/null 2>&1; then
  $SUDO mkdir -p "$OBJSTORE_CACHE"
  [ -x "$OBJSTORE_CACHE/venv/bin/python" ] || $SUDO python3 -m venv "$OBJSTORE_CACHE/venv"
  $SUDO "$OBJSTORE_CACHE/venv/bin/pip" install -q 'moto[server]'
  $SUDO ln -sf "$OBJSTORE_CACHE/venv/bin/moto_server" /usr/local/bin/moto_server
fi
