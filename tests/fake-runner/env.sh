#!/bin/bash
# Fake GitHub runner: after actions/runner src/Misc/layoutroot/env.sh — appends to .env the
# variables of a fixed list that are set and not in it yet (LANG, JAVA_HOME, …), and writes
# PATH to .path.
varCheckList=('LANG' 'JAVA_HOME' 'ANT_HOME' 'M2_HOME' 'ANDROID_HOME' 'ANDROID_SDK_ROOT'
    'GRADLE_HOME' 'NVM_BIN' 'NVM_PATH' 'LD_LIBRARY_PATH' 'PERL5LIB')
envContents=""
if [ -f ".env" ]; then
    envContents=`cat .env`
else
    touch .env
fi
for checkVar in "${varCheckList[@]}"; do
    if [ -n "${!checkVar}" ] && [ "${envContents#*${checkVar}=}" = "$envContents" ]; then
        echo "${checkVar}=${!checkVar}" >> .env
    fi
done
if [ -f ".path" ]; then
    echo "${PATH}" > .path
else
    echo "${PATH}" > .path
fi
