#!/usr/bin/env bash
# An OCI runtime wrapper for dockerd (--add-runtime): this machine's capability bounding set
# lacks CAP_SYS_RESOURCE, so runc refuses a spec asking for it ("unable to apply caps"), and
# `docker run --privileged` (what kind nodes are) asks for every capability. The wrapper
# drops that one capability from the spec runc is about to use (the bundle's config.json on
# create/run, the --process file on exec) and then runs runc with the same arguments.
set -euo pipefail
drop='CAP_SYS_RESOURCE'
strip() { # $1: JSON file; $2: jq path of the object holding the capability lists
  local file=$1 tmp
  [ -f "$file" ] && grep -q "$drop" "$file" || return 0
  tmp=$(mktemp "$file.XXXXXX")
  jq --arg c "$drop" "$2 |= (if . == null then . else with_entries(.value |= map(select(. != \$c))) end)" "$file" >"$tmp"
  chmod --reference="$file" "$tmp"
  mv "$tmp" "$file"
}
cmd='' bundle='.' process=''
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    create | run | exec) [ -n "$cmd" ] || cmd=${args[i]} ;;
    --bundle | -b) bundle=${args[i + 1]} ;;
    --bundle=*) bundle=${args[i]#--bundle=} ;;
    --process | -p) process=${args[i + 1]} ;;
    --process=*) process=${args[i]#--process=} ;;
  esac
done
case "$cmd" in
  create | run) strip "$bundle/config.json" '.process.capabilities' ;;
  exec) [ -z "$process" ] || strip "$process" '.capabilities' ;;
esac
exec "${SPO_RUNC:-runc}" "$@"
