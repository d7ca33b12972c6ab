package org.polarspark.job;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Function;

/**
 * One option of the job, defined once: its name, documentation, default, allowed values (as
 * text for errors and {@code --help}), the modes it applies to, and its parser. Parsers throw
 * {@link IllegalArgumentException} with a message that completes "must be ...".
 *
 * @param <T> the parsed type
 */
public final class JobOption<T> {
    private final String name;
    private final String group;
    private final String doc;
    private final String defaultValue; // null: no default (unset)
    private final String allowed;
    private final Set<Mode> modes;
    private final boolean repeatable;
    private final boolean hidden;
    private final Function<String, T> parser;

    private JobOption(String name, String group, String doc, String defaultValue, String allowed,
                      Set<Mode> modes, boolean repeatable, boolean hidden,
                      Function<String, T> parser) {
        this.name = name;
        this.group = group;
        this.doc = doc;
        this.defaultValue = defaultValue;
        this.allowed = allowed;
        this.modes = modes;
        this.repeatable = repeatable;
        this.hidden = hidden;
        this.parser = parser;
    }

    public String name() {
        return name;
    }

    public String group() {
        return group;
    }

    public String doc() {
        return doc;
    }

    /** The default as written on the command line, or null when the option has none. */
    public String defaultValue() {
        return defaultValue;
    }

    public String allowed() {
        return allowed;
    }

    public Set<Mode> modes() {
        return modes;
    }

    /** Lists may be given several times on the command line; the values add up. */
    public boolean repeatable() {
        return repeatable;
    }

    /** Test hooks: accepted, but not listed by {@code --help}. */
    public boolean hidden() {
        return hidden;
    }

    /** The Spark setting that carries this option: {@code spark.polar.<name>}. */
    public String sparkKey() {
        return "spark.polar." + name;
    }

    /** Parses a raw value; {@code source} names where it came from, for the error message. */
    public T parse(String raw, String source) {
        try {
            return parser.apply(raw);
        } catch (IllegalArgumentException e) {
            throw new JobConfigException("option '" + name + "' (" + source + ") must be "
                    + allowed + "; got '" + raw + "'"
                    + (e.getMessage() != null && !e.getMessage().isEmpty()
                    ? " (" + e.getMessage() + ")" : ""));
        }
    }

    // -------------------------------------------------------------------------------------
    // Builders
    // -------------------------------------------------------------------------------------

    static Builder builder(String name, String group, String doc) {
        return new Builder(name, group, doc);
    }

    static final class Builder {
        private final String name;
        private final String group;
        private final String doc;
        private String defaultValue;
        private Set<Mode> modes = EnumSet.allOf(Mode.class);
        private boolean hidden;

        private Builder(String name, String group, String doc) {
            this.name = name;
            this.group = group;
            this.doc = doc;
        }

        Builder defaultValue(String d) {
            this.defaultValue = d;
            return this;
        }

        Builder modes(Mode first, Mode... rest) {
            this.modes = EnumSet.of(first, rest);
            return this;
        }

        Builder hidden() {
            this.hidden = true;
            return this;
        }

        private <T> JobOption<T> build(String allowed, boolean repeatable, Function<String, T> p) {
            JobOption<T> o = new JobOption<>(name, group, doc, defaultValue, allowed, modes,
                    repeatable, hidden, p);
            if (defaultValue != null) {
                o.parse(defaultValue, "default"); // a bad default is a programming error
            }
            return o;
        }

        JobOption<String> string() {
            return build("a string", false, s -> s);
        }

        JobOption<String> nonEmpty() {
            return build("a non-empty string", false, s -> {
                if (s.isEmpty()) {
                    throw new IllegalArgumentException("");
                }
                return s;
            });
        }

        JobOption<String> choice(String... values) {
            List<String> allowed = Arrays.asList(values);
            return build("one of " + String.join(", ", values), false, s -> {
                String v = s.trim().toLowerCase(Locale.ROOT);
                if (!allowed.contains(v)) {
                    throw new IllegalArgumentException("");
                }
                return v;
            });
        }

        JobOption<Integer> intRange(int min, int max) {
            String range = max == Integer.MAX_VALUE ? "an integer >= " + min
                    : "an integer in [" + min + ", " + max + "]";
            return build(range, false, s -> {
                int v;
                try {
                    v = Integer.parseInt(s.trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("");
                }
                if (v < min || v > max) {
                    throw new IllegalArgumentException("");
                }
                return v;
            });
        }

        /** An integer in [min, max], or the empty string for "not set" (parsed as null). */
        JobOption<Integer> optionalIntRange(int min, int max) {
            return build("empty (off) or an integer in [" + min + ", " + max + "]", false, s -> {
                if (s.trim().isEmpty()) {
                    return null;
                }
                int v;
                try {
                    v = Integer.parseInt(s.trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("");
                }
                if (v < min || v > max) {
                    throw new IllegalArgumentException("");
                }
                return v;
            });
        }

        JobOption<Long> anyLong() {
            return build("a 64-bit integer", false, s -> {
                try {
                    return Long.parseLong(s.trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("");
                }
            });
        }

        /** A finite double in a range; each bound open or closed. */
        JobOption<Double> doubleRange(double min, boolean minOpen, double max, boolean maxOpen) {
            return build(doubleRangeText(min, minOpen, max, maxOpen), false,
                    s -> parseDouble(s, min, minOpen, max, maxOpen));
        }

        /** true or false (any case). */
        JobOption<Boolean> bool() {
            return build("true or false", false, s -> {
                String v = s.trim().toLowerCase(Locale.ROOT);
                if (v.equals("true")) {
                    return Boolean.TRUE;
                }
                if (v.equals("false")) {
                    return Boolean.FALSE;
                }
                throw new IllegalArgumentException("");
            });
        }

        /** As {@link #doubleRange}, or the empty string for "not set" (parsed as null). */
        JobOption<Double> optionalDoubleRange(double min, boolean minOpen, double max,
                                              boolean maxOpen) {
            return build("empty (unset) or " + doubleRangeText(min, minOpen, max, maxOpen),
                    false, s -> s.trim().isEmpty() ? null
                            : parseDouble(s, min, minOpen, max, maxOpen));
        }

        /**
         * A comma-separated list; {@code \,} is a literal comma, {@code \n}, {@code \t} and
         * {@code \\} the usual escapes. Empty items are dropped.
         */
        JobOption<List<String>> list() {
            return build("a comma-separated list (\\, for a literal comma, \\n for a newline)",
                    true, JobOption::splitList);
        }
    }

    private static String doubleRangeText(double min, boolean minOpen, double max,
                                          boolean maxOpen) {
        String lo = (minOpen ? "(" : "[") + fmt(min);
        String hi = Double.isInfinite(max) ? "inf)" : fmt(max) + (maxOpen ? ")" : "]");
        return "a number in " + lo + ", " + hi;
    }

    private static double parseDouble(String s, double min, boolean minOpen, double max,
                                      boolean maxOpen) {
        double v;
        try {
            v = Double.parseDouble(s.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("");
        }
        boolean ok = Double.isFinite(v) && (minOpen ? v > min : v >= min)
                && (maxOpen ? v < max : v <= max);
        if (!ok) {
            throw new IllegalArgumentException("");
        }
        return v;
    }

    private static String fmt(double d) {
        return d == Math.rint(d) ? String.valueOf((long) d) : String.valueOf(d);
    }

    static List<String> splitList(String raw) {
        List<String> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c == '\\' && i + 1 < raw.length()) {
                char e = raw.charAt(++i);
                switch (e) {
                    case ',' -> cur.append(',');
                    case 'n' -> cur.append('\n');
                    case 't' -> cur.append('\t');
                    case 'r' -> cur.append('\r');
                    case '\\' -> cur.append('\\');
                    default -> throw new IllegalArgumentException("unknown escape \\" + e);
                }
            } else if (c == ',') {
                if (cur.length() > 0) {
                    out.add(cur.toString());
                }
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        if (cur.length() > 0) {
            out.add(cur.toString());
        }
        return List.copyOf(out);
    }
}
