# The local backend's tests need no server: only `mkfifo` (coreutils) to make a FIFO.
need_apt coreutils
