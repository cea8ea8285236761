#!/usr/bin/env bash
# Compile android_demo's pure JVM core with javac and run its JUnit 4 tests.
#
# Needs a JDK (javac 9 or newer, for --release) and Debian's junit4 package, which this script
# installs with apt-get when /usr/share/java/junit4.jar is missing (CI runs as root). No Gradle,
# no Android SDK, nothing downloaded besides that package. Safe to run repeatedly.
#   android_demo/ci.sh            compile + run every *Test class
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
core="$here/core"
out="$core/out"
junit=/usr/share/java/junit4.jar
hamcrest=/usr/share/java/hamcrest-core.jar

if [ ! -f "$junit" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "ci.sh: $junit is missing; install it with: sudo apt-get install -y junit4" >&2
        exit 1
    fi
    echo "ci.sh: installing Debian's junit4 (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends junit4 >/dev/null
fi
for jar in "$junit" "$hamcrest"; do
    [ -f "$jar" ] || { echo "ci.sh: $jar not found after installing junit4" >&2; exit 1; }
done
command -v javac >/dev/null || { echo "ci.sh: javac not found; install a JDK (apt-get install -y default-jdk-headless)" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out/main" "$out/test"

# The core targets Java 8 (the Android app's source level; Android API 24 has the Java 8 library
# core uses), so --release 8 also proves it calls no newer JDK API. Warnings are errors.
javac --release 8 -encoding UTF-8 -Xlint:all,-options -Werror -d "$out/main" \
    $(find "$core/src/main/java" -name '*.java' | sort)
javac --release 8 -encoding UTF-8 -Xlint:all,-options,-processing -Werror -d "$out/test" \
    -cp "$out/main:$junit:$hamcrest" \
    $(find "$core/src/test/java" -name '*.java' | sort)

tests=$(cd "$core/src/test/java" && find . -name '*Test.java' | sed 's|^\./||; s|\.java$||; s|/|.|g' | sort)
[ -n "$tests" ] || { echo "ci.sh: no *Test.java found" >&2; exit 1; }

# JUnitCore prints the usual summary ("OK (N tests)" or the failures) and exits 1 on failure.
java -cp "$out/main:$out/test:$core/src/test/resources:$junit:$hamcrest" org.junit.runner.JUnitCore $tests
