# Creates the system user; enables and starts nothing.
getent group shardcar >/dev/null || groupadd --system shardcar
getent passwd shardcar >/dev/null || useradd --system --gid shardcar --home-dir /var/lib/shardcar \
    --no-create-home --shell /sbin/nologin --comment "shardcar log shipper" shardcar
exit 0
