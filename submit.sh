#!/usr/bin/env bash
# Runs the Polar Spark job.
#
#   ./submit.sh [spark-submit flags] [job options]
#
# With SPARK_HOME set: $SPARK_HOME/bin/spark-submit with the application jar (shaded; Spark
# itself is provided by the installation). Without it: the same job in embedded local mode
# (local[*], one JVM) on the Maven-built classpath. Either way the jar is built first when it
# is missing or older than the sources (or when POLAR_REBUILD=1).
#
# spark-submit flags (--master, --conf k=v, --driver-memory, --executor-memory, --num-executors,
# --properties-file, --files, --jars, ...) go to spark-submit; in embedded mode --master,
# --conf, --properties-file, --driver-memory, --driver-java-options and --name are honoured and
# the executor/cluster ones are ignored with a warning. Everything else is a job option
# (--input, --model, --max-tokens, ...; see ./submit.sh --help).
#
# Without --conf-file, the embedded default preset conf/polar-local.properties is used (the
# bundled tiny model, the sample prompts, output under ./output/generate); options given here
# override it. With no arguments at all the script runs from the repository root, where the
# preset's relative paths point; otherwise relative paths are relative to the current directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAIN=org.polarspark.job.PolarJob

if [[ $# -eq 0 ]]; then
  cd "$ROOT"
fi

# --- split the arguments: spark-submit's flags vs. the job's options -----------------------
SPARK_ARGS=()
JOB_ARGS=()
HAS_CONF_FILE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --master|--deploy-mode|--conf|-c|--properties-file|--driver-memory|--driver-java-options|\
    --driver-library-path|--driver-class-path|--driver-cores|--executor-memory|--executor-cores|\
    --num-executors|--total-executor-cores|--jars|--packages|--exclude-packages|--repositories|\
    --files|--archives|--name|--queue|--principal|--keytab|--proxy-user)
      [[ $# -ge 2 ]] || { echo "submit.sh: $1 needs a value" >&2; exit 2; }
      SPARK_ARGS+=("$1" "$2"); shift 2 ;;
    --master=*|--deploy-mode=*|--conf=*|--properties-file=*|--driver-memory=*|\
    --driver-java-options=*|--executor-memory=*|--executor-cores=*|--num-executors=*|\
    --total-executor-cores=*|--jars=*|--packages=*|--files=*|--archives=*|--name=*|--queue=*)
      SPARK_ARGS+=("${1%%=*}" "${1#*=}"); shift ;;
    --verbose|-v|--supervise)
      SPARK_ARGS+=("$1"); shift ;;
    --conf-file|--conf-file=*)
      HAS_CONF_FILE=1; JOB_ARGS+=("$1"); shift ;;
    *)
      JOB_ARGS+=("$1"); shift ;;
  esac
done
if [[ $HAS_CONF_FILE -eq 0 ]]; then
  JOB_ARGS=(--conf-file "$ROOT/conf/polar-local.properties" "${JOB_ARGS[@]+"${JOB_ARGS[@]}"}")
fi

# --- build when needed ---------------------------------------------------------------------
TARGET="$ROOT/spark-job/target"
app_jar() { ls "$TARGET"/polar-spark-job-*.jar 2> /dev/null | head -n 1; }
module_jar() { ls "$TARGET"/spark-job-*.jar 2> /dev/null | grep -v -- '-sources' | head -n 1; }
needs_build() {
  local jar; jar="$(app_jar)"
  [[ "${POLAR_REBUILD:-0}" == 1 || -z "$jar" || -z "$(module_jar)" \
     || ! -f "$TARGET/classpath.txt" ]] && return 0
  [[ -n "$(find "$ROOT/pom.xml" "$ROOT/gpu-runtime/pom.xml" "$ROOT/spark-job/pom.xml" \
      "$ROOT/gpu-runtime/src/main" "$ROOT/spark-job/src/main" -newer "$jar" -print -quit)" ]]
}
if needs_build; then
  echo "submit.sh: building (mvn -q -B -DskipTests package) ..." >&2
  (cd "$ROOT" && mvn -q -B -DskipTests package) >&2
fi

LOG4J="file:$ROOT/conf/log4j2.properties"
# The module opens that Spark's launcher gives its JVMs (Spark on Java 17; Arrow's java.nio).
JAVA_OPENS=(-XX:+IgnoreUnrecognizedVMOptions
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/sun.nio.cs=ALL-UNNAMED --add-opens=java.base/sun.security.action=ALL-UNNAMED
  --add-opens=java.base/sun.util.calendar=ALL-UNNAMED -Djdk.reflect.useDirectMethodHandle=false
  -Dio.netty.tryReflectionSetAccessible=true)

# --- with a Spark installation: spark-submit -----------------------------------------------
if [[ -n "${SPARK_HOME:-}" ]]; then
  [[ -x "$SPARK_HOME/bin/spark-submit" ]] || {
    echo "submit.sh: SPARK_HOME=$SPARK_HOME has no bin/spark-submit" >&2; exit 2; }
  DRIVER_OPTS="-Dlog4j2.configurationFile=$LOG4J"
  ARGS=()
  for ((i = 0; i < ${#SPARK_ARGS[@]}; i++)); do
    if [[ "${SPARK_ARGS[$i]}" == --driver-java-options ]]; then
      DRIVER_OPTS="$DRIVER_OPTS ${SPARK_ARGS[$((i + 1))]}"; i=$((i + 1))
    else
      ARGS+=("${SPARK_ARGS[$i]}")
    fi
  done
  exec "$SPARK_HOME/bin/spark-submit" --class "$MAIN" --name polar-spark \
    --driver-java-options "$DRIVER_OPTS" \
    "${ARGS[@]+"${ARGS[@]}"}" "$(app_jar)" "${JOB_ARGS[@]}"
fi

# --- without: embedded local mode ----------------------------------------------------------
JVM=("${JAVA_OPENS[@]}" "-Dlog4j2.configurationFile=$LOG4J")
set_prop() { JVM+=("-D$1=$2"); }
for ((i = 0; i < ${#SPARK_ARGS[@]}; i++)); do
  flag="${SPARK_ARGS[$i]}"; value="${SPARK_ARGS[$((i + 1))]:-}"
  case "$flag" in
    --master) set_prop spark.master "$value"; i=$((i + 1)) ;;
    --name) set_prop spark.app.name "$value"; i=$((i + 1)) ;;
    --conf|-c)
      [[ "$value" == *=* ]] || { echo "submit.sh: --conf needs key=value" >&2; exit 2; }
      set_prop "${value%%=*}" "${value#*=}"; i=$((i + 1)) ;;
    --properties-file)
      while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%%#*}"; line="$(echo "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
        [[ -z "$line" ]] && continue
        key="${line%%[ =	]*}"; val="${line#"$key"}"
        val="$(echo "$val" | sed -e 's/^[[:space:]=]*//')"
        set_prop "$key" "$val"
      done < "$value"
      i=$((i + 1)) ;;
    --driver-memory) JVM+=("-Xmx$value"); i=$((i + 1)) ;;
    --driver-java-options) read -r -a extra <<< "$value"; JVM+=("${extra[@]}"); i=$((i + 1)) ;;
    --verbose|-v|--supervise) ;;
    *) echo "submit.sh: $flag is for a cluster; ignored in embedded mode (set SPARK_HOME to use" \
         "spark-submit)" >&2; i=$((i + 1)) ;;
  esac
done
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
exec "$JAVA" "${JVM[@]}" -cp "$(module_jar):$(cat "$TARGET/classpath.txt")" "$MAIN" \
  "${JOB_ARGS[@]}"
