if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
echo "shardcar installed. Edit /etc/shardcar/agent.toml, then: systemctl enable --now shardcar"
