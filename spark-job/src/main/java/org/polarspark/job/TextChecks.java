package org.polarspark.job;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/** Per-row text validation; every problem is a message for the row's {@code error} column. */
final class TextChecks {
    private TextChecks() {
    }

    /** Thrown for a row that cannot run; the message becomes the row's error. */
    static final class BadRow extends Exception {
        BadRow(String message) {
            super(message, null, false, false);
        }
    }

    /**
     * The text of a column value: a string, or binary that must be UTF-8.
     *
     * @param what the column's role in messages ("prompt", "text", "context", "choice 2")
     */
    static String text(Object value, String what) throws BadRow {
        if (value == null) {
            throw new BadRow(what + " is null");
        }
        String s;
        if (value instanceof byte[] b) {
            try {
                s = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(b)).toString();
            } catch (CharacterCodingException e) {
                throw new BadRow("invalid text: " + what + " is not valid UTF-8");
            }
        } else {
            s = value.toString();
        }
        if (s.isEmpty()) {
            throw new BadRow(what + " is empty");
        }
        int bad = unpairedSurrogate(s);
        if (bad >= 0) {
            throw new BadRow(String.format("invalid text: %s has an unpaired UTF-16 surrogate "
                    + "U+%04X at character %d", what, (int) s.charAt(bad), bad));
        }
        int replacement = s.indexOf('\uFFFD');
        if (replacement >= 0) {
            // Spark decodes string columns leniently: bytes that are not UTF-8 arrive as U+FFFD
            throw new BadRow("invalid text: " + what + " has U+FFFD (the replacement character) "
                    + "at character " + replacement + "; the input was not valid UTF-8");
        }
        return s;
    }

    /**
     * Index in a JSON text of a backslash-u escape (four hex digits) that encodes an unpaired
     * UTF-16 surrogate, or -1. Spark's JSON parser would silently turn it into '?', so it is caught on the raw
     * line. Escaped backslashes are skipped correctly.
     */
    static int unpairedSurrogateEscape(String json) {
        int pendingHigh = -1; // index of a high-surrogate escape waiting for its low half
        for (int i = 0; i < json.length(); i++) {
            char c = json.charAt(i);
            if (c != '\\' || i + 1 >= json.length()) {
                if (pendingHigh >= 0) {
                    return pendingHigh;
                }
                continue;
            }
            char e = json.charAt(i + 1);
            if (e != 'u' || i + 6 > json.length()) {
                if (pendingHigh >= 0) {
                    return pendingHigh;
                }
                i++; // an escaped character such as \\ or \"
                continue;
            }
            int unit;
            try {
                unit = Integer.parseInt(json.substring(i + 2, i + 6), 16);
            } catch (NumberFormatException ex) {
                return -1; // not JSON; the parser reports it
            }
            if (Character.isHighSurrogate((char) unit)) {
                if (pendingHigh >= 0) {
                    return pendingHigh;
                }
                pendingHigh = i;
            } else if (Character.isLowSurrogate((char) unit)) {
                if (pendingHigh < 0) {
                    return i;
                }
                pendingHigh = -1;
            } else if (pendingHigh >= 0) {
                return pendingHigh;
            }
            i += 5;
        }
        return pendingHigh;
    }

    /** Index of the first unpaired surrogate, or -1. */
    static int unpairedSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                    i++;
                    continue;
                }
                return i;
            }
            if (Character.isLowSurrogate(c)) {
                return i;
            }
        }
        return -1;
    }

    private static final Pattern WHITESPACE = Pattern.compile("\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    /** lm-eval's word count: {@code len(re.split(r"\s+", text))}. */
    static int words(String s) {
        return WHITESPACE.split(s, -1).length;
    }

    /** Length in Unicode code points, as Python's {@code len(str)} (lm-eval acc_norm). */
    static int codePoints(String s) {
        return s.codePointCount(0, s.length());
    }
}
