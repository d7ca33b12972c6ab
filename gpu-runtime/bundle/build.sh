#!/usr/bin/env bash
# Builds the self-contained GPU bundle for hosts with an NVIDIA driver but no JDK or Maven:
#   gpu-runtime/target/gpu-bundle/            runtime/ (jlink: only the modules needed), lib/
#                                             (gpu-runtime jar with the kernel fatbins, its
#                                             dependencies, natives for linux-x86_64 only),
#                                             test-classes/, junit console launcher, scripts
#   gpu-runtime/target/polar-gpu-bundle.tar.xz   the same, packed (it travels with the tree)
# Usage: gpu-runtime/bundle/build.sh        (from anywhere; needs JDK 17+, Maven, nvcc)
# On the GPU host, from the repository root:
#   tar xJf gpu-runtime/target/polar-gpu-bundle.tar.xz -C /tmp && /tmp/gpu-bundle/gpu-tests
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="$repo/gpu-runtime/target"
out="$target/gpu-bundle"
JUNIT_PLATFORM="${JUNIT_PLATFORM:-1.14.1}"
SLF4J="${SLF4J:-2.0.16}"
cd "$repo"
command -v nvcc >/dev/null || { echo "nvcc is needed to build the kernel image" >&2; exit 1; }

# package, not install: nothing below reads the local repository's copy of this build.
mvn -B -q -pl gpu-runtime -am -DskipTests package
grep -q fatbin "$target/classes/org/polarspark/cuda/kernels/kernels.index" \
  || { echo "the gpu-runtime jar has no kernel image" >&2; exit 1; }

rm -rf "$out" && mkdir -p "$out/lib" "$out/work"
mvn -B -q -pl gpu-runtime dependency:copy-dependencies -DincludeScope=test \
    -DoutputDirectory="$out/work/deps" -Dmdep.useRepositoryLayout=false
mvn -B -q dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$JUNIT_PLATFORM" \
    -DoutputDirectory="$out/lib" -Dmdep.stripVersion=true
mvn -B -q dependency:copy -Dartifact="org.slf4j:slf4j-simple:$SLF4J" -DoutputDirectory="$out/lib"
cp "$target"/gpu-runtime-*.jar "$out/lib/gpu-runtime.jar"
for jar in "$out"/work/deps/*.jar; do
  name="$(basename "$jar")"
  case "$name" in
    junit-*|opentest4j-*|apiguardian-*) ;;  # inside the console launcher already
    log4j-*) ;;  # slf4j-simple instead: Log4j needs java.xml, 9 MB more of runtime
    jfreechart-*) ;;  # PolarAccuracyPlot's charts (a CPU-side test main), not run here
    jcuda-natives-*)
      # Only the driver API binding is used: drop the runtime/cuBLAS/... natives.
      mkdir -p "$out/work/jn" && (cd "$out/work/jn" && unzip -q -o "$jar" \
        'lib/libJCudaDriver-*linux-x86_64.so' 'META-INF/*' 2>/dev/null || true)
      (cd "$out/work/jn" && zip -q -r "$out/lib/$name" .) ;;
    tokenizers-*)
      # DJL's tokenizers jar carries natives for four platforms; keep linux-x86_64. Its
      # library ships with a static symbol table (2.5 MB, 0.4 MB packed) that nothing reads:
      # JNI resolves Java_* through the dynamic symbols, which strip --strip-unneeded keeps.
      mkdir -p "$out/work/tk" && (cd "$out/work/tk" && unzip -q -o "$jar" \
        -x 'native/lib/linux-aarch64/*' 'native/lib/osx-*' 'native/lib/win-*')
      if command -v strip >/dev/null; then
        find "$out/work/tk/native" -name '*.so' -exec strip --strip-unneeded {} +
      fi
      (cd "$out/work/tk" && zip -q -r "$out/lib/$name" .) ;;
    jna-*)
      # JNA (DJL loads the tokenizers library through it) carries libjnidispatch for 26
      # platforms (1.1 MB packed); keep linux-x86-64's and every class.
      mkdir -p "$out/work/jna" && (cd "$out/work/jna" && unzip -q -o "$jar" \
        -x 'com/sun/jna/*/libjnidispatch*' 'com/sun/jna/*/jnidispatch*')
      (cd "$out/work/jna" && unzip -q -o "$jar" 'com/sun/jna/linux-x86-64/*')
      (cd "$out/work/jna" && zip -q -r "$out/lib/$name" .) ;;
    *) cp "$jar" "$out/lib/" ;;
  esac
done
# Jars stored uncompressed: xz packs their contents far better than it packs deflate streams.
mkdir -p "$out/work/re"
for jar in "$out"/lib/*.jar; do
  rm -rf "$out/work/re" && mkdir -p "$out/work/re"
  (cd "$out/work/re" && unzip -q "$jar" && rm -f "$jar" && zip -q -0 -r -X "$jar" .)
done
cp -r "$target/test-classes" "$out/test-classes"
rm -rf "$out/test-classes/golden"  # read from the source tree (it travels with the bundle)
rm -f "$out"/test-classes/org/polarspark/polar/PolarAccuracyPlot*.class  # needs jfreechart
rm -rf "$out/work"

jlink --add-modules java.base,java.logging,java.management,java.naming,jdk.unsupported \
      --strip-debug --no-header-files --no-man-pages --output "$out/runtime"

# The JVM's native symbols are not needed to run: strip them (about 4 MB).
command -v strip >/dev/null && strip "$out/runtime/lib/server/libjvm.so" || true
cp "$repo/gpu-runtime/bundle/gpu-tests" "$out/gpu-tests"
chmod +x "$out/gpu-tests"
if [ -f "$repo/gpu-runtime/bundle/polar-bench" ]; then
  cp "$repo/gpu-runtime/bundle/polar-bench" "$out/polar-bench" && chmod +x "$out/polar-bench"
fi
# xz -9: a 64 MiB dictionary (-6: 8 MiB) reaches from each fp16 fatbin back to its bf16 twin,
# which the jar stores beside it (0.8 MB less on the fatbins; unpacking needs 65 MiB of memory).
tar -C "$target" -cf - gpu-bundle | xz -9 -T1 > "$target/polar-gpu-bundle.tar.xz"
du -sh "$out" "$target/polar-gpu-bundle.tar.xz"
