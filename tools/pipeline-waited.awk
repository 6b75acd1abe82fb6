# tools/pipeline-waited.awk: the mean of the per-rank pipeline waits that
# --log-pipeline prints ("  rank R: waited W ms ..."), or "-" when a log has
# none. Used by tools/bench-overlap.sh and tools/bench-multihost.sh.
/^  rank [0-9]+: waited / { s += $4; n++ }
END { if (n) printf "%.1f", s / n; else print "-" }
