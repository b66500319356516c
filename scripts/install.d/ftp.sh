# FTP/FTPS test servers for cloudsync-ftp (sourced by scripts/install-test-deps.sh).
#
# vsftpd, proftpd and pure-ftpd conflict as Debian packages (all provide ftp-server), so ProFTPD
# is installed with apt and the other two are unpacked from their .debs into $FTP_SERVERS_DIR
# (default /opt/cloudsync-ftp-servers), where the tests look for them:
#   $FTP_SERVERS_DIR/vsftpd/usr/sbin/vsftpd
#   $FTP_SERVERS_DIR/pureftpd/usr/sbin/pure-ftpd, .../usr/bin/pure-pw
# Their shared-library dependencies are installed with apt. openssl makes the test certificate
# and password hashes. vsftpd authenticates system users through PAM, so the test user
# `cloudsync-ftp` (password `cloudsync-ftp-pass`) is created here.

need_apt proftpd-core proftpd-mod-crypto openssl \
  libcap2 libpam0g libpam-modules libssl3 libwrap0 libsodium23 libcrypt1

FTP_SERVERS_DIR=${FTP_SERVERS_DIR:-/opt/cloudsync-ftp-servers}

# unpack_deb NAME DIR: unpacks Debian package NAME into $FTP_SERVERS_DIR/DIR unless it is there.
unpack_deb() {
  local pkg=$1 dir=$FTP_SERVERS_DIR/$2
  [ -f "$dir/.unpacked" ] && return 0
  echo "unpacking $pkg into $dir"
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  local tmp
  tmp=$(mktemp -d); chmod 755 "$tmp"
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
  $SUDO mkdir -p "$dir"
  $SUDO dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dir"
  rm -rf "$tmp"
  $SUDO touch "$dir/.unpacked"
}

unpack_deb vsftpd vsftpd
unpack_deb pure-ftpd pureftpd

# vsftpd changes into the user's home before its local_root, so the home must exist.
if ! id cloudsync-ftp >/dev/null 2>&1; then
  $SUDO useradd -M -d / -s /bin/sh cloudsync-ftp
  echo 'cloudsync-ftp:cloudsync-ftp-pass' | $SUDO chpasswd
elif [ "$(getent passwd cloudsync-ftp | cut -d: -f6)" != / ]; then
  $SUDO usermod -d / cloudsync-ftp
fi
