package org.polarspark.job;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.sql.execution.datasources.parquet.ParquetWriteSupport;

/**
 * Spark's Parquet write support, plus the key-value entries that {@link PolarParquetFileFormat}
 * put into the job configuration. Spark's own entries (its schema, version) are kept; ours
 * cannot replace them.
 */
public class PolarParquetWriteSupport extends ParquetWriteSupport {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Override
    public WriteContext init(Configuration configuration) {
        WriteContext spark = super.init(configuration);
        String json = configuration.get(PolarParquetFileFormat.CONF_KEY);
        if (json == null) {
            return spark;
        }
        Map<String, String> extra;
        try {
            extra = JSON.readValue(json, new TypeReference<LinkedHashMap<String, String>>() {
            });
        } catch (IOException e) {
            throw new UncheckedIOException("bad " + PolarParquetFileFormat.CONF_KEY, e);
        }
        Map<String, String> all = new LinkedHashMap<>(extra);
        all.putAll(spark.getExtraMetaData());
        return new WriteContext(spark.getSchema(), all);
    }
}
