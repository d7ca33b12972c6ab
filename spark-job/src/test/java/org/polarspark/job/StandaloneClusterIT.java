package org.polarspark.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A real Spark standalone cluster on the loopback interface: a Master and two Workers, each a
 * child JVM started from Spark's own classes, with a SPARK_HOME whose jars/ holds the Spark
 * distribution's jars (this build's provided dependencies). The application jar (shaded, built
 * in {@code package}) is submitted through {@code org.apache.spark.deploy.SparkSubmit} in a
 * child JVM. Once the first partition has finished, one Worker and its executor are killed; the
 * job must still complete, every row exactly once, with the same rows as a clean run.
 *
 * <p>Runs in {@code mvn verify} (failsafe), after the application jar exists.
 */
class StandaloneClusterIT {
    private static final List<Process> PROCESSES = new ArrayList<>();
    private static final HttpClient HTTP = HttpClient.newBuilder()
            .connectTimeout(Duration.ofSeconds(2)).build();

    /** target/standalone-it: SPARK_HOME, work dirs, inputs, outputs and every JVM's log. */
    static Path tmp;

    static Path sparkHome;
    static Path appJar;
    static int masterPort;
    static int masterUiPort;
    static Process worker1;
    static Process worker2;

    /** The module opens Spark's launcher adds for its JVMs (JavaModuleOptions). */
    static List<String> jvmOpens() {
        return Arrays.asList(System.getProperty("polar.test.jvm.args",
                "-XX:+IgnoreUnrecognizedVMOptions --add-opens=java.base/java.lang=ALL-UNNAMED "
                        + "--add-opens=java.base/java.nio=ALL-UNNAMED "
                        + "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED "
                        + "--add-opens=java.base/java.util=ALL-UNNAMED "
                        + "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED").trim()
                .split("\\s+"));
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** A JVM on SPARK_HOME/jars/* running a Spark main class, output to a log file. */
    static Process java(String name, List<String> jvmArgs, String mainClass, List<String> args)
            throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmOpens());
        cmd.addAll(jvmArgs);
        cmd.add("-Dlog4j2.configurationFile=" + SparkTests.repoRoot()
                .resolve("conf/log4j2.properties").toUri());
        cmd.add("-cp");
        cmd.add(sparkHome.resolve("jars") + File.separator + "*");
        cmd.add(mainClass);
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("SPARK_HOME", sparkHome.toString());
        pb.environment().put("SPARK_SCALA_VERSION", "2.13");
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        pb.environment().remove("SPARK_CONF_DIR");
        pb.redirectErrorStream(true);
        pb.redirectOutput(tmp.resolve(name + ".log").toFile());
        Process p = pb.start();
        PROCESSES.add(p);
        return p;
    }

    static String log(String name) throws IOException {
        Path p = tmp.resolve(name + ".log");
        return Files.exists(p) ? Files.readString(p, StandardCharsets.UTF_8) : "";
    }

    static int aliveWorkers() {
        try {
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(
                    "http://127.0.0.1:" + masterUiPort + "/json/")).timeout(Duration.ofSeconds(2))
                    .build(), HttpResponse.BodyHandlers.ofString());
            return JobTestBase.JSON.readTree(r.body()).path("aliveworkers").asInt(0);
        } catch (IOException e) {
            return -1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return -1;
        }
    }

    @BeforeAll
    static void cluster() throws Exception {
        tmp = Path.of("target", "standalone-it").toAbsolutePath();
        SparkTests.deleteTree(tmp);
        Files.createDirectories(tmp);
        appJar = Path.of(System.getProperty("polar.app.jar", "target/polar-spark-job.jar"));
        assertTrue(Files.isRegularFile(appJar), "the application jar " + appJar
                + " is built by 'mvn package'");
        // SPARK_HOME/jars: Spark and what it ships (this build's compile+provided classpath)
        // without what the application jar brings itself.
        sparkHome = tmp.resolve("spark-home");
        Files.createDirectories(sparkHome.resolve("jars"));
        Files.createDirectories(sparkHome.resolve("conf"));
        String cp = Files.readString(Path.of(System.getProperty("polar.classpath.file",
                "target/classpath.txt"))).trim();
        for (String entry : cp.split(File.pathSeparator)) {
            Path jar = Path.of(entry);
            String n = jar.getFileName().toString();
            boolean inAppJar = n.startsWith("gpu-runtime") || n.startsWith("tokenizers-")
                    || n.startsWith("api-") || n.startsWith("jna-") || n.startsWith("jcuda");
            if (n.endsWith(".jar") && !inAppJar) {
                Files.createSymbolicLink(sparkHome.resolve("jars").resolve(n), jar);
            }
        }
        masterPort = freePort();
        masterUiPort = freePort();
        java("master", List.of("-Xmx256m"), "org.apache.spark.deploy.master.Master",
                List.of("--host", "127.0.0.1", "--port", String.valueOf(masterPort),
                        "--webui-port", String.valueOf(masterUiPort)));
        String master = "spark://127.0.0.1:" + masterPort;
        worker1 = java("worker1", List.of("-Xmx256m"), "org.apache.spark.deploy.worker.Worker",
                List.of("--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                        "--webui-port", String.valueOf(freePort()), "--work-dir",
                        tmp.resolve("work1").toString(), master));
        worker2 = java("worker2", List.of("-Xmx256m"), "org.apache.spark.deploy.worker.Worker",
                List.of("--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
                        "--webui-port", String.valueOf(freePort()), "--work-dir",
                        tmp.resolve("work2").toString(), master));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (aliveWorkers() < 2) {
            assertTrue(System.nanoTime() < deadline, "workers did not register:\n"
                    + log("master") + log("worker1") + log("worker2"));
            Thread.sleep(500);
        }
    }

    @AfterAll
    static void stop() {
        for (Process p : PROCESSES) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
    }

    static Process submit(String name, String master, Path input, Path output)
            throws IOException {
        List<String> args = new ArrayList<>(List.of("--master", master,
                "--deploy-mode", "client", "--class", PolarJob.class.getName(),
                "--conf", "spark.ui.enabled=false",
                "--conf", "spark.driver.host=127.0.0.1",
                "--conf", "spark.driver.bindAddress=127.0.0.1",
                "--conf", "spark.executor.memory=768m",
                "--conf", "spark.task.maxFailures=4",
                "--conf", "spark.executor.extraJavaOptions=-Dlog4j2.configurationFile="
                        + SparkTests.repoRoot().resolve("conf/log4j2.properties").toUri(),
                appJar.toString(),
                "--input", input.toString(), "--output", output.toString(),
                "--model", SparkTests.golden("opt").toString(), "--id-column", "id",
                "--max-tokens", "6", "--temperature", "0.9", "--seed", "7",
                "--partitions", "6", "--batch-rows", "2", "--backend", "cpu",
                "--progress-interval-s", "2", "--test.row-delay-ms", "400"));
        return java(name, List.of("-Xmx768m"), "org.apache.spark.deploy.SparkSubmit", args);
    }

    static Map<String, List<Object>> rows(SparkSession spark, Path output) {
        Map<String, List<Object>> out = new TreeMap<>();
        for (Row r : spark.read().parquet(output.toString()).collectAsList()) {
            List<Object> values = new ArrayList<>();
            for (String f : r.schema().fieldNames()) {
                if (!RetryTest.TIMINGS.contains(f)) {
                    Object v = r.getAs(f);
                    values.add(v instanceof scala.collection.Seq<?> s ? s.toString() : v);
                }
            }
            String key = r.getAs("row_id") + "#" + r.getAs("sample_index");
            if (out.put(key, values) != null) {
                throw new AssertionError("duplicate row " + key + " in " + output);
            }
        }
        return out;
    }

    @Test
    void killingAWorkerMidJobLosesAndDuplicatesNothing() throws Exception {
        Path input = SparkTests.write(tmp.resolve("prompts.jsonl"),
                SparkTests.lines("datasets/prompts/prompts.jsonl", 30));
        Path clean = tmp.resolve("clean");
        Path killed = tmp.resolve("killed");

        // the clean run: the same application jar on local[2]
        Process ref = submit("submit-clean", "local[2]", input, clean);
        assertTrue(ref.waitFor(240, TimeUnit.SECONDS), "clean run timed out");
        assertEquals(0, ref.exitValue(), log("submit-clean"));

        Process job = submit("submit-killed", "spark://127.0.0.1:" + masterPort, input, killed);
        Path stats = killed.resolve("_stats");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (true) {
            assertTrue(job.isAlive(), "the job ended before a worker could be killed:\n"
                    + log("submit-killed"));
            assertTrue(System.nanoTime() < deadline, "no partition finished:\n"
                    + log("submit-killed"));
            if (Files.isDirectory(stats)) {
                try (Stream<Path> s = Files.list(stats)) {
                    if (s.anyMatch(p -> p.getFileName().toString().startsWith("part-"))) {
                        break;
                    }
                }
            }
            Thread.sleep(200);
        }
        // a lost machine: the worker and the executor it launched die at once
        worker1.descendants().forEach(ProcessHandle::destroyForcibly);
        worker1.destroyForcibly();
        assertTrue(job.waitFor(300, TimeUnit.SECONDS), "the job did not finish");
        String driverLog = log("submit-killed");
        assertEquals(0, job.exitValue(), driverLog);
        assertTrue(driverLog.toLowerCase().contains("lost executor")
                || driverLog.contains("ExecutorLostFailure"), "the kill hit the job:\n"
                + driverLog);

        SparkSession spark = SparkSession.builder().master("local[1]")
                .config("spark.ui.enabled", "false").getOrCreate();
        try {
            Map<String, List<Object>> a = rows(spark, clean);
            Map<String, List<Object>> b = rows(spark, killed);
            assertEquals(30, a.size());
            assertEquals(a.keySet(), b.keySet(), "every row exactly once");
            assertEquals(a, b, "the same rows as the clean run");
        } finally {
            spark.stop();
        }
        try (Stream<Path> s = Files.list(stats)) {
            assertEquals(6, s.filter(p -> p.getFileName().toString().startsWith("part-"))
                    .count());
        }
        assertTrue(Files.isRegularFile(killed.resolve("_summary.json")));
        assertTrue(worker2.isAlive());
    }
}
