#!/usr/bin/env bash
# The web page's browser test drives Debian's Chromium through Playwright (which never downloads a browser
# here). Install it when it is missing and we can (root with apt-get); otherwise say how.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
else
    echo "warning: /usr/bin/chromium is missing; the browser test will fail. Install it: sudo apt-get install chromium" >&2
fi
