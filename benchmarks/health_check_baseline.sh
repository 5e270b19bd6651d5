#!/bin/bash
# The seed document's health_check.sh, as written there, with its paths made parameters so the
# benchmark can run it beside `healthcheck run` on the same box:
#   WORKSPACE (for /workspace), LOGS (for /logs), SUPERVISORCTL (the command, with its -c conf).
# It is the baseline: the same work done the old way (env grep, supervisorctl status, tail of
# each log, sed on the docs), nothing more.
WORKSPACE=${WORKSPACE:-/workspace}
LOGS=${LOGS:-/logs}
SUPERVISORCTL=${SUPERVISORCTL:-supervisorctl}

# Create status file with timestamp
echo "# Red Project System Status - $(date)" > "$WORKSPACE/system_status.md"
echo "## Environment Information" >> "$WORKSPACE/system_status.md"
echo "\`\`\`" >> "$WORKSPACE/system_status.md"
env | grep -E 'CUDA|PYTHON|VNC|JUPYTER' >> "$WORKSPACE/system_status.md"
echo "\`\`\`" >> "$WORKSPACE/system_status.md"

# Check running services
echo "## Service Status" >> "$WORKSPACE/system_status.md"
echo "\`\`\`" >> "$WORKSPACE/system_status.md"
$SUPERVISORCTL status >> "$WORKSPACE/system_status.md"
echo "\`\`\`" >> "$WORKSPACE/system_status.md"

# Check recent logs
echo "## Recent Log Entries" >> "$WORKSPACE/system_status.md"
echo "\`\`\`" >> "$WORKSPACE/system_status.md"
find "$LOGS" -type f -name "*.log" -exec sh -c 'echo "=== $1 ==="; tail -n 20 "$1"' _ {} \; >> "$WORKSPACE/system_status.md"
echo "\`\`\`" >> "$WORKSPACE/system_status.md"

# Update documentation timestamp
sed -i "s/Last updated:.*$/Last updated: $(date)/" "$WORKSPACE/docs_vast-ai-environment.md"
