# On erase (not upgrade), stop the service so the final checkpoint is written.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then systemctl stop shardcar.service >/dev/null 2>&1 || :; fi
