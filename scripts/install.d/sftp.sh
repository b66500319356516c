# SFTP backend tests: OpenSSH's sshd (run by the test harness in the foreground on 127.0.0.1),
# ssh-keygen for the temp host and client keys, and the `sftp` client the benchmark compares
# against. Sourced by scripts/install-test-deps.sh (which provides need_apt and $SUDO).
need_apt openssh-server openssh-client
# sshd refuses to start without its privilege separation directory.
[ -d /run/sshd ] || $SUDO mkdir -p -m 0755 /run/sshd
