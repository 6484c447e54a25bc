#!/bin/bash
# Fake GitHub runner: run.sh, after actions/runner src/Misc/layoutroot/run.sh (the `run`
# branch; RUNNER_MANUALLY_TRAP_SIG and RUNNER_UPDATE_CA_CERTS are not modelled). It resolves
# its own directory and calls the helper by absolute path, so a runner user who cannot reach
# that directory fails here, as with the real one.
SOURCE="${BASH_SOURCE[0]}"
while [ -h "$SOURCE" ]; do
    DIR="$( cd -P "$( dirname "$SOURCE" )" && pwd )"
    SOURCE="$(readlink "$SOURCE")"
    [[ $SOURCE != /* ]] && SOURCE="$DIR/$SOURCE"
done
DIR="$( cd -P "$( dirname "$SOURCE" )" && pwd )"

while :; do
    cp -f "$DIR"/run-helper.sh.template "$DIR"/run-helper.sh
    "$DIR"/run-helper.sh $*
    returnCode=$?
    if [[ $returnCode -eq 2 ]]; then
        echo "Restarting runner..."
    else
        echo "Exiting runner..."
        exit 0
    fi
done
