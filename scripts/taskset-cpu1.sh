#!/usr/bin/env bash
# socketfleet-bench on CPU 1, for drivers that take the bench's path (bench-reshard.sh).
exec taskset -c 1 "${BIN:-target/release}/socketfleet-bench" "$@"
