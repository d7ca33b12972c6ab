package org.polarspark.job;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

/**
 * Raw option values gathered from their sources, each remembering where it came from. Later
 * sources replace earlier ones: default &lt; conf file &lt; spark.polar.* &lt; command line.
 * Within the command line a repeatable (list) option accumulates; any other takes the last.
 */
final class RawOptions {
    private record Value(List<String> raw, String source) {
    }

    private final Map<String, Value> values = new LinkedHashMap<>();
    private boolean help;

    /** True when the command line asked for {@code --help}. */
    boolean help() {
        return help;
    }

    /**
     * Collects options.
     *
     * @param args        the command line
     * @param sparkPolar  Spark settings {@code spark.polar.*}, keyed by the full Spark key
     */
    static RawOptions collect(List<String> args, Map<String, String> sparkPolar) {
        RawOptions cli = new RawOptions();
        String confFile = cli.parseArgs(args);
        RawOptions out = new RawOptions();
        out.help = cli.help;
        if (confFile != null) {
            out.loadFile(Path.of(confFile));
        }
        for (Map.Entry<String, String> e : new TreeMap<>(sparkPolar).entrySet()) {
            String name = e.getKey().substring("spark.polar.".length());
            out.set(known(name, "Spark setting " + e.getKey()), e.getValue(),
                    "Spark setting " + e.getKey(), false);
        }
        out.values.putAll(cli.values);
        return out;
    }

    private static JobOption<?> known(String name, String where) {
        JobOption<?> o = JobOptions.find(name);
        if (o == null) {
            String hint = JobOptions.suggest(name);
            throw new JobConfigException("unknown option '" + name + "' (" + where + ")"
                    + (hint != null ? "; did you mean '" + hint + "'?" : "")
                    + " Run with --help for the list.");
        }
        return o;
    }

    /** Parses the command line into this; returns the --conf-file path or null. */
    private String parseArgs(List<String> args) {
        String confFile = null;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--help") || a.equals("-h")) {
                help = true;
                continue;
            }
            if (!a.startsWith("--") || a.length() == 2) {
                throw new JobConfigException("unexpected argument '" + a + "': options are "
                        + "--name value or --name=value (run with --help)");
            }
            String name;
            String value;
            int eq = a.indexOf('=');
            if (eq > 0) {
                name = a.substring(2, eq);
                value = a.substring(eq + 1);
            } else {
                name = a.substring(2);
                if (i + 1 >= args.size()) {
                    throw new JobConfigException("option '" + name + "' (command line) needs a "
                            + "value");
                }
                value = args.get(++i);
            }
            if (name.equals("conf-file")) {
                confFile = value;
                continue;
            }
            if (name.startsWith("spark.polar.")) {
                name = name.substring("spark.polar.".length());
            }
            set(known(name, "command line"), value, "command line", true);
        }
        return confFile;
    }

    private void loadFile(Path file) {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        } catch (IOException e) {
            throw new JobConfigException("cannot read --conf-file " + file + ": " + e, e);
        }
        for (String key : new TreeMap<>(Map.copyOf(
                (Map<String, String>) (Map<?, ?>) p)).keySet()) {
            String name = key.startsWith("spark.polar.") ? key.substring(12) : key;
            String where = "conf file " + file;
            set(known(name, where + ", key '" + key + "'"), p.getProperty(key), where, false);
        }
    }

    private void set(JobOption<?> o, String raw, String source, boolean accumulate) {
        Value old = values.get(o.name());
        List<String> list = new ArrayList<>();
        if (accumulate && o.repeatable() && old != null && old.source().equals(source)) {
            list.addAll(old.raw());
        }
        list.add(raw);
        values.put(o.name(), new Value(list, source));
    }

    /** The parsed value of an option (its default when unset); null if unset without default. */
    <T> T get(JobOption<T> o) {
        Value v = values.get(o.name());
        if (v == null) {
            return o.defaultValue() == null ? null : o.parse(o.defaultValue(), "default");
        }
        if (o.repeatable()) {
            List<String> all = new ArrayList<>();
            for (String r : v.raw()) {
                List<?> parsed = (List<?>) o.parse(r, v.source());
                for (Object x : parsed) {
                    all.add((String) x);
                }
            }
            @SuppressWarnings("unchecked")
            T t = (T) List.copyOf(all);
            return t;
        }
        return o.parse(v.raw().get(v.raw().size() - 1), v.source());
    }

    /** Like {@link #get}, but an unset option without default is an error. */
    <T> T require(JobOption<T> o) {
        T t = get(o);
        if (t == null) {
            throw new JobConfigException("option '" + o.name() + "' is required: pass --"
                    + o.name() + " VALUE, set " + o.sparkKey() + ", or put it in --conf-file");
        }
        return t;
    }

    /** Where an option's value came from ("default" when unset). */
    String source(JobOption<?> o) {
        Value v = values.get(o.name());
        return v == null ? "default" : v.source();
    }

    /** Options that were set but do not apply to the mode. */
    List<String> notApplicable(Mode mode) {
        List<String> out = new ArrayList<>();
        for (String name : values.keySet()) {
            JobOption<?> o = JobOptions.find(name);
            if (!o.modes().contains(mode)) {
                out.add(name);
            }
        }
        return out;
    }
}
