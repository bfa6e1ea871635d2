#!/usr/bin/env bash
# Usage: render-data-sources.sh TEMPLATE TARGET
#
# Writes TEMPLATE (deploy/cloudbeaver/data-sources.json) to TARGET with the placeholder
# ${NGINX_KPI_READER_PASSWORD} replaced by that environment variable, escaped for JSON, so that the
# committed file holds no password. docker-compose.yml runs it in the cloudbeaver container before the
# image's own start script, with TARGET = conf/initial-data-sources.conf: the official image copies that
# file into a new workspace as GlobalConfiguration/.dbeaver/data-sources.json (an existing workspace keeps
# its connections). CloudBeaver encrypts the password into its credentials store on first use.
set -euo pipefail

template=${1:?usage: render-data-sources.sh TEMPLATE TARGET}
target=${2:?usage: render-data-sources.sh TEMPLATE TARGET}
password=${NGINX_KPI_READER_PASSWORD:?is not set (see .env.example)}
if [[ $password == *[[:cntrl:]]* ]]; then
    echo "render-data-sources.sh: NGINX_KPI_READER_PASSWORD contains a control character" >&2
    exit 1
fi

# JSON string escaping: backslash first, then the double quote.
password=${password//\\/\\\\}
password=${password//\"/\\\"}
placeholder='${NGINX_KPI_READER_PASSWORD}'
shopt -u patsub_replacement 2>/dev/null || true  # bash 5.2: '&' in a replacement is literal again
content=$(<"$template")
[[ $content == *"$placeholder"* ]] || { echo "render-data-sources.sh: no $placeholder in $template" >&2; exit 1; }
content=${content//"$placeholder"/$password}

umask 077
printf '%s\n' "$content" >"$target"
