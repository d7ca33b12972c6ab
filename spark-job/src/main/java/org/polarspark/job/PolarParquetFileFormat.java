package org.polarspark.job;

import org.apache.hadoop.mapreduce.Job;
import org.apache.parquet.hadoop.ParquetOutputFormat;
import org.apache.parquet.hadoop.api.WriteSupport;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.execution.datasources.OutputWriterFactory;
import org.apache.spark.sql.execution.datasources.parquet.ParquetFileFormat;
import org.apache.spark.sql.types.StructType;
import scala.Option;

/**
 * Spark's Parquet data source with one addition: key-value metadata of our own in every part
 * file's footer. Used through {@code df.write().format(PolarParquetFileFormat.class.getName())}
 * with the option {@value #METADATA_OPTION} (a JSON object of string keys and values), so the
 * write still goes through Spark's FileFormatWriter and its commit protocol; only the
 * {@link WriteSupport} changes: {@link PolarParquetWriteSupport} is Spark's own plus the extra
 * entries.
 *
 * <p>Spark's ParquetWriteSupport writes fixed footer metadata (the Spark schema and version)
 * and has no hook for more; Hadoop {@code parquet.*} settings do not reach the footer either.
 * The write support class, however, is looked up from the job configuration
 * ({@code parquet.write.support.class}) after {@link #prepareWrite} sets it, which is the seam
 * used here.
 */
public class PolarParquetFileFormat extends ParquetFileFormat {
    private static final long serialVersionUID = 1L;

    /** The DataFrameWriter option carrying the metadata, as a JSON object. */
    public static final String METADATA_OPTION = "polar.parquet.metadata";
    /** The Hadoop configuration key that carries it to the tasks' write support. */
    static final String CONF_KEY = "polar.parquet.metadata.json";

    @Override
    public OutputWriterFactory prepareWrite(SparkSession sparkSession, Job job,
                                            scala.collection.immutable.Map<String, String> options,
                                            StructType dataSchema) {
        OutputWriterFactory factory = super.prepareWrite(sparkSession, job, options, dataSchema);
        Option<String> metadata = options.get(METADATA_OPTION);
        if (metadata.isDefined()) {
            job.getConfiguration().set(CONF_KEY, metadata.get());
        }
        job.getConfiguration().setClass(ParquetOutputFormat.WRITE_SUPPORT_CLASS,
                PolarParquetWriteSupport.class, WriteSupport.class);
        return factory;
    }

    @Override
    public String toString() {
        return "PolarParquet";
    }
}
