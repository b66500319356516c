# WebDAV test servers (sourced by scripts/install-test-deps.sh, which provides need_apt and $SUDO):
# Apache httpd with mod_dav/mod_dav_fs and nginx-extras (dav_ext + lua) for the conformance tests,
# rclone (installed by the main script) for `rclone serve webdav` and the benchmarks, and openssl
# for nginx's htpasswd and the test certificates.
need_apt apache2 apache2-utils nginx-extras openssl
