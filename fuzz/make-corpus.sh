#!/usr/bin/env bash
# Build the seed corpora of the fuzz targets in fuzz/corpus/<target>/ from the repository's
# real kernel captures (tests/fixtures/*.log), its rule files (rules/*.toml) and the small
# hand-written seeds in fuzz/seeds/<target>/. Nothing large is committed: the corpora are
# made here, at run time. Files are named by content hash, so re-running adds nothing twice.
#   usage: fuzz/make-corpus.sh [TARGET...]    (default: all five)
set -euo pipefail
cd "$(dirname "$0")"
root=..
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(record correlator eql kql rule_file)

# put DIR: store standard input as one corpus file named by its hash.
put() {
    local dir=$1 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    mv "$tmp" "$dir/$(sha1sum <"$tmp" | cut -c1-16)"
}

for t in "${targets[@]}"; do
    dir=corpus/$t
    mkdir -p "$dir"
    for f in seeds/"$t"/*; do
        [ -f "$f" ] && put "$dir" <"$f"
    done
    case $t in
    record)
        # Every distinct line of the captures, one per file.
        cat "$root"/tests/fixtures/*.log | sort -u | while IFS= read -r line; do
            printf '%s\n' "$line" | put "$dir"
        done
        ;;
    correlator)
        # Each capture whole, and its first 12 lines, under a few configurations (the first
        # byte: max_inflight, timeout and clock; see fuzz_targets/correlator.rs).
        for f in "$root"/tests/fixtures/*.log; do
            for cfg in '\x00' '\x23' '\x9f' '\x31'; do
                { printf "$cfg"; cat "$f"; } | put "$dir"
            done
            { printf '\x02'; head -n 12 "$f"; } | put "$dir"
        done
        ;;
    eql)
        # The queries of the shipped rules.
        for f in "$root"/rules/*.toml; do
            awk "/^query = '''/{q=1;next} /^'''/{q=0} q" "$f" | put "$dir"
        done
        ;;
    kql)
        # The queries of Elastic's KQL file rules.
        for f in "$root"/tests/elastic-rules/kuery/*.toml; do
            awk "/^query = '''/{q=1;next} /^'''/{q=0} q" "$f" | put "$dir"
        done
        ;;
    rule_file)
        for f in "$root"/rules/*.toml; do
            put "$dir" <"$f"
        done
        ;;
    *)
        echo "make-corpus: unknown target $t" >&2
        exit 2
        ;;
    esac
    echo "make-corpus: $t: $(find "$dir" -type f | wc -l) files"
done
