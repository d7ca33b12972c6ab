package org.polarspark.job;

import static org.apache.spark.sql.functions.coalesce;
import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.concat;
import static org.apache.spark.sql.functions.expr;
import static org.apache.spark.sql.functions.from_json;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.regexp_extract;
import static org.apache.spark.sql.functions.substring;
import static org.apache.spark.sql.functions.when;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.LongWritable;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.mapreduce.InputSplit;
import org.apache.hadoop.mapreduce.lib.input.FileInputFormat;
import org.apache.hadoop.mapreduce.lib.input.FileSplit;
import org.apache.hadoop.mapreduce.lib.input.TextInputFormat;
import org.apache.spark.api.java.JavaNewHadoopRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.AtomicType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.IntegralType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import scala.Tuple2;

/**
 * Reads the input into the job's standard shape: {@value #ROW_ID} (string, never null),
 * {@value #INPUT_ERROR} (why the row cannot run, or null), then the columns the mode needs
 * (text columns as string or binary, choices as array&lt;string&gt;, label as int), then the
 * passthrough columns, each under its input name.
 *
 * <p><b>row_id.</b> With {@code id-column}, the column's value as a string (a null id makes the
 * row an error row, identified by its derived id). Otherwise it is derived from where the row
 * sits in the input, which a retried task reads identically:
 * <ul>
 *   <li>Parquet: {@code <file>:<row index>}, the row's index within its file (Spark's
 *       {@code _metadata.row_index});</li>
 *   <li>JSON Lines and text: {@code <file>:<byte offset>}, the byte offset of the line's start
 *       within its file (Hadoop's TextInputFormat key), independent of how files are split.</li>
 * </ul>
 * {@code <file>} is the file's path relative to the input directory (its name when the input is
 * a file or a glob), URI-encoded as Hadoop prints it.
 */
final class InputReader {
    static final String ROW_ID = "__polar_row_id";
    static final String INPUT_ERROR = "__polar_input_error";
    private static final String FILE = "__polar_file";
    private static final String POS = "__polar_pos";
    private static final String LINE = "__polar_line";
    private static final String CORRUPT = "__polar_corrupt";
    private static final String ID = "__polar_id";

    private InputReader() {
    }

    /** The resolved format: parquet, jsonl or text. */
    static String resolveFormat(JobConfig cfg, Configuration conf) {
        if (!cfg.inputFormat().equals("auto")) {
            return cfg.inputFormat();
        }
        String name = cfg.input();
        try {
            Path p = new Path(cfg.input());
            FileSystem fs = p.getFileSystem(conf);
            FileStatus[] matches = fs.globStatus(p);
            if (matches == null || matches.length == 0) {
                throw new JobConfigException("input '" + cfg.input() + "' does not exist");
            }
            FileStatus first = matches[0];
            if (first.isDirectory()) {
                FileStatus[] inside = fs.listStatus(first.getPath(),
                        x -> !x.getName().startsWith("_") && !x.getName().startsWith("."));
                Arrays.sort(inside);
                FileStatus f = Arrays.stream(inside).filter(FileStatus::isFile).findFirst()
                        .orElseThrow(() -> new JobConfigException("input directory '"
                                + cfg.input() + "' has no data files"));
                name = f.getPath().getName();
            } else {
                name = first.getPath().getName();
            }
        } catch (IOException e) {
            throw new JobConfigException("cannot list input '" + cfg.input() + "': " + e, e);
        }
        String lower = name.toLowerCase(Locale.ROOT);
        if (lower.endsWith(".parquet") || lower.endsWith(".parq") || lower.endsWith(".pq")) {
            return "parquet";
        }
        if (lower.endsWith(".jsonl") || lower.endsWith(".json") || lower.endsWith(".ndjson")) {
            return "jsonl";
        }
        if (lower.endsWith(".txt") || lower.endsWith(".text")) {
            return "text";
        }
        throw new JobConfigException("cannot tell the format of input '" + cfg.input()
                + "' from the file name '" + name + "'; set input-format to parquet, jsonl or "
                + "text");
    }

    /** Reads and standardizes the input; startup errors name the missing column. */
    static Dataset<Row> read(SparkSession spark, JobConfig cfg, Configuration conf) {
        String format = resolveFormat(cfg, conf);
        String root;
        try {
            Path p = new Path(cfg.input());
            root = p.getFileSystem(conf).makeQualified(p).toUri().toString();
        } catch (IOException e) {
            throw new JobConfigException("cannot open input '" + cfg.input() + "': " + e, e);
        }
        Dataset<Row> raw = switch (format) {
            case "parquet" -> spark.read().parquet(cfg.input()).select(col("*"),
                    col("_metadata.file_path").as(FILE), col("_metadata.row_index").as(POS),
                    lit(null).cast(DataTypes.StringType).as(INPUT_ERROR));
            case "jsonl" -> readJsonLines(spark, cfg, conf);
            case "text" -> readText(spark, cfg, conf);
            default -> throw new JobConfigException("unknown input format " + format);
        };
        return standardize(raw, cfg, root, format);
    }

    private static Dataset<Row> standardize(Dataset<Row> raw, JobConfig cfg, String root,
                                            String format) {
        StructType schema = raw.schema();
        List<Column> select = new ArrayList<>();
        Column rel = when(col(FILE).startsWith(lit(root + "/")),
                substring(col(FILE), root.length() + 2, Integer.MAX_VALUE))
                .otherwise(regexp_extract(col(FILE), "[^/]*$", 0));
        Column derived = concat(rel, lit(":"), col(POS).cast(DataTypes.StringType));
        Column inputError = col(INPUT_ERROR);
        if (cfg.idColumn() != null) {
            DataType t = field(schema, cfg.idColumn(), "id-column", format).dataType();
            if (!(t instanceof AtomicType)) {
                throw new JobConfigException("id-column '" + cfg.idColumn() + "' has type "
                        + t.simpleString() + "; an atomic column (string, number, ...) is needed");
            }
            Column id = col(quote(cfg.idColumn())).cast(DataTypes.StringType);
            select.add(coalesce(id, derived).as(ROW_ID));
            inputError = coalesce(inputError, when(id.isNull(), lit("id column '"
                    + cfg.idColumn() + "' is null")));
        } else {
            select.add(derived.as(ROW_ID));
        }
        select.add(inputError.as(INPUT_ERROR));
        Set<String> added = new LinkedHashSet<>();
        for (String c : cfg.requiredColumns()) {
            StructField f = field(schema, c, optionFor(cfg, c), format);
            select.add(coerce(cfg, f).as(c));
            added.add(c);
        }
        for (String c : cfg.passthrough()) {
            StructField f = field(schema, c, "passthrough", format);
            if (OutputSchemas.reserved(cfg.mode()).contains(c)) {
                throw new JobConfigException("passthrough column '" + c + "' has the name of an "
                        + "output column of mode " + cfg.mode().wire() + "; rename it in the "
                        + "input");
            }
            if (added.add(c)) {
                select.add(col(quote(f.name())).as(c));
            } else if (!f.dataType().equals(DataTypes.StringType)
                    && !f.dataType().equals(DataTypes.BinaryType)
                    && cfg.requiredColumns().contains(c)) {
                throw new JobConfigException("passthrough column '" + c + "' is also the "
                        + "job's input column and was converted; pass it through under another "
                        + "name");
            }
        }
        return raw.select(select.toArray(new Column[0]));
    }

    private static String optionFor(JobConfig cfg, String column) {
        if (column.equals(cfg.promptColumn()) && cfg.mode() == Mode.GENERATE) {
            return "prompt-column";
        }
        if (column.equals(cfg.textColumn()) && cfg.mode() == Mode.SCORE) {
            return "text-column";
        }
        if (column.equals(cfg.contextColumn())) {
            return "context-column";
        }
        if (column.equals(cfg.choicesColumn())) {
            return "choices-column";
        }
        return "label-column";
    }

    /** Text columns: string or binary (checked as UTF-8 per row); choices; label. */
    private static Column coerce(JobConfig cfg, StructField f) {
        DataType t = f.dataType();
        Column c = col(quote(f.name()));
        String name = f.name();
        if (cfg.mode() == Mode.MC && name.equals(cfg.choicesColumn())) {
            if (t instanceof ArrayType a && a.elementType() instanceof AtomicType) {
                return a.elementType().equals(DataTypes.StringType) ? c
                        : c.cast(DataTypes.createArrayType(DataTypes.StringType));
            }
            throw new JobConfigException("choices-column '" + name + "' has type "
                    + t.simpleString() + "; an array of strings is needed");
        }
        if (cfg.mode() == Mode.MC && name.equals(cfg.labelColumn())) {
            if (t instanceof IntegralType || t.equals(DataTypes.StringType)
                    || t instanceof org.apache.spark.sql.types.NumericType) {
                // try_cast: a label that is not an integer becomes null (an error row), where
                // ANSI cast would fail the job
                return expr("try_cast(" + quote(name) + " as int)");
            }
            throw new JobConfigException("label-column '" + name + "' has type "
                    + t.simpleString() + "; an integer column is needed");
        }
        if (t.equals(DataTypes.StringType) || t.equals(DataTypes.BinaryType)) {
            return c;
        }
        if (t instanceof AtomicType) {
            return c.cast(DataTypes.StringType);
        }
        throw new JobConfigException("column '" + name + "' has type " + t.simpleString()
                + "; a string column is needed");
    }

    private static StructField field(StructType schema, String name, String option,
                                     String format) {
        for (StructField f : schema.fields()) {
            if (f.name().equals(name) && !isInternal(name)) {
                return f;
            }
        }
        List<String> available = new ArrayList<>();
        String hint = null;
        for (StructField f : schema.fields()) {
            if (!isInternal(f.name())) {
                available.add(f.name());
                if (f.name().equalsIgnoreCase(name)) {
                    hint = f.name();
                }
            }
        }
        throw new JobConfigException("input column '" + name + "' (" + option + ") is missing"
                + " from the " + format + " input" + (hint != null ? "; did you mean '" + hint
                + "'?" : "") + "; its columns are " + available);
    }

    private static boolean isInternal(String name) {
        return name.startsWith("__polar_");
    }

    static String quote(String name) {
        return "`" + name.replace("`", "``") + "`";
    }

    // ---------------------------------------------------------------------------------------
    // Line-oriented inputs
    // ---------------------------------------------------------------------------------------

    private static final StructType LINES = new StructType()
            .add(FILE, DataTypes.StringType, false)
            .add(POS, DataTypes.LongType, false)
            .add(LINE, DataTypes.StringType, true)
            .add(INPUT_ERROR, DataTypes.StringType, true);

    /** (file, byte offset, line or null, error or null) of every line of the input files. */
    private static Dataset<Row> lines(SparkSession spark, JobConfig cfg, Configuration conf,
                                      boolean json) {
        boolean skipBlank = json; // blank lines are not records of JSON Lines
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        Configuration c = new Configuration(conf);
        c.setBoolean(FileInputFormat.INPUT_DIR_RECURSIVE, true);
        JavaNewHadoopRDD<LongWritable, Text> pairs = (JavaNewHadoopRDD<LongWritable, Text>)
                jsc.newAPIHadoopFile(cfg.input(), TextInputFormat.class, LongWritable.class,
                        Text.class, c);
        JavaRDD<Row> rows = pairs.mapPartitionsWithInputSplit(
                (InputSplit split, Iterator<Tuple2<LongWritable, Text>> it) -> {
                    String file = ((FileSplit) split).getPath().toUri().toString();
                    List<Row> out = new ArrayList<>();
                    while (it.hasNext()) {
                        Tuple2<LongWritable, Text> t = it.next();
                        long offset = t._1().get();
                        byte[] bytes = Arrays.copyOf(t._2().getBytes(), t._2().getLength());
                        String line;
                        try {
                            line = StandardCharsets.UTF_8.newDecoder()
                                    .onMalformedInput(CodingErrorAction.REPORT)
                                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                                    .decode(ByteBuffer.wrap(bytes)).toString();
                        } catch (CharacterCodingException e) {
                            out.add(RowFactory.create(file, offset, null,
                                    "invalid text: the line is not valid UTF-8 ("
                                            + e.getMessage() + ")"));
                            continue;
                        }
                        if (skipBlank && line.isBlank()) {
                            continue;
                        }
                        int bad = json ? TextChecks.unpairedSurrogateEscape(line) : -1;
                        if (bad >= 0) {
                            out.add(RowFactory.create(file, offset, null, "invalid text: the "
                                    + "line has an unpaired UTF-16 surrogate escape "
                                    + line.substring(bad, bad + 6) + " at character " + bad));
                            continue;
                        }
                        out.add(RowFactory.create(file, offset, line, null));
                    }
                    return out.iterator();
                }, true);
        return spark.createDataFrame(rows, LINES);
    }

    private static Dataset<Row> readText(SparkSession spark, JobConfig cfg, Configuration conf) {
        if (cfg.mode() == Mode.MC) {
            throw new JobConfigException("mode mc needs context, choices and label columns; a "
                    + "text input (one prompt per line) has none: use jsonl or parquet");
        }
        if (cfg.idColumn() != null) {
            throw new JobConfigException("id-column '" + cfg.idColumn() + "' cannot be used "
                    + "with a text input (one prompt per line, no columns)");
        }
        String column = cfg.requiredColumns().get(0);
        for (String p : cfg.passthrough()) {
            if (!p.equals(column)) {
                throw new JobConfigException("passthrough column '" + p + "' is missing from "
                        + "the text input; its only column is '" + column + "'");
            }
        }
        return lines(spark, cfg, conf, false).withColumnRenamed(LINE, column);
    }

    private static Dataset<Row> readJsonLines(SparkSession spark, JobConfig cfg,
                                              Configuration conf) {
        Dataset<Row> lines = lines(spark, cfg, conf, true);
        // Spark infers the schema from the valid lines; malformed ones are flagged per row.
        Dataset<String> valid = lines.where(col(LINE).isNotNull()).select(col(LINE))
                .as(Encoders.STRING());
        StructType inferred = spark.read().option("mode", "PERMISSIVE").json(valid).schema();
        StructType schema = new StructType();
        for (StructField f : inferred.fields()) {
            if (!f.name().equals("_corrupt_record") && !f.name().equals(
                    spark.conf().get("spark.sql.columnNameOfCorruptRecord", "_corrupt_record"))) {
                schema = schema.add(f);
            }
        }
        schema = schema.add(CORRUPT, DataTypes.StringType, true);
        Column parsed = from_json(col(LINE), schema, Map.of("mode", "PERMISSIVE",
                "columnNameOfCorruptRecord", CORRUPT));
        Dataset<Row> withJson = lines.withColumn("__polar_json", parsed);
        Column error = coalesce(col(INPUT_ERROR),
                when(col("__polar_json").isNull().or(col("__polar_json." + CORRUPT).isNotNull()),
                        concat(lit("invalid JSON: "), substring(col(LINE), 1, 80))));
        List<Column> select = new ArrayList<>();
        select.add(col(FILE));
        select.add(col(POS));
        select.add(error.as(INPUT_ERROR));
        for (StructField f : schema.fields()) {
            if (!f.name().equals(CORRUPT)) {
                select.add(col("__polar_json." + quote(f.name())).as(f.name()));
            }
        }
        return withJson.select(select.toArray(new Column[0]));
    }
}
