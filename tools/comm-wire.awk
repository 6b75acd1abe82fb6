# tools/comm-wire.awk: bytes a rank puts on the wire in one iteration, from a
# --log-comm table. The program counts message sizes (the convention of the
# papers' formulas: an all-reduce of s*b*h values "moves" s*b*h); on the wire
# a ring all-reduce sends 2(n-1)/n of that, an all-gather, reduce-scatter or
# all-to-all (n-1)/n, a point-to-point send all of it (its receive is the
# same transfer). Group sizes come as -v tp=.. cp=.. dp=.. pp=.. (and, for
# --cp-comm-type a2a+p2p, cpa=A: the all-to-all level's size; the ring's
# sends need none).
# Prints the total, then "grp collective bytes" for each row.
# Use: sed -n '/^comm rank 0 /,/^comm check rank 0/p' LOG | awk -f tools/comm-wire.awk -v tp=2 cp=2 dp=1 pp=1
function size(g) {
    if (g == "tp") return tp; if (g == "cp") return cp; if (g == "dp") return dp
    if (g == "dpcp") return dp * cp; if (g == "mp") return tp * pp; if (g == "embd") return 2
    if (g == "cpa2a") return cpa; if (g == "cpp2p") return cp / cpa
    return 1
}
$1 != "comm" && $3 ~ /^[0-9]+$/ {
    n = size($1); f = 0
    if ($2 == "all-reduce") f = 2 * (n - 1) / n
    else if ($2 == "all-gather" || $2 == "reduce-scatter" || $2 == "all-to-all") f = (n - 1) / n
    else if ($2 == "send") f = 1
    w = $4 * f; total += w
    if (w > 0) rows = rows sprintf("%s%s %s %.0f", k++ ? ", " : "", $1, $2, w)
}
END { printf "%.0f\t%s\n", total, k ? rows : "none" }
