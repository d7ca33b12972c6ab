package org.polarspark.job;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URI;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.util.Progressable;

/**
 * The local disk under a scheme of its own, {@code polartest:}, registered through
 * {@code fs.polartest.impl}. It stands for any remote Hadoop file system (hdfs:, s3a:): paths
 * with this scheme can only be read through Hadoop's FileSystem API, and every open is counted,
 * so a test can tell that a model was copied through it, and how often.
 */
public class CountingFileSystem extends FileSystem {
    static final String SCHEME = "polartest";
    static final AtomicInteger OPENS = new AtomicInteger();

    private final RawLocalFileSystem local = new RawLocalFileSystem();
    private Path workingDir = new Path(SCHEME + ":///");

    @Override
    public void initialize(URI name, Configuration conf) throws IOException {
        super.initialize(name, conf);
        local.initialize(URI.create("file:///"), conf);
    }

    @Override
    public String getScheme() {
        return SCHEME;
    }

    @Override
    public URI getUri() {
        return URI.create(SCHEME + ":///");
    }

    /** A local absolute path as a polartest: URI string. */
    static String uri(java.nio.file.Path local) {
        return SCHEME + "://" + local.toAbsolutePath();
    }

    private Path toLocal(Path p) {
        Path q = makeQualified(p);
        return new Path("file", null, q.toUri().getPath());
    }

    private Path toPolar(Path p) {
        return new Path(SCHEME, null, p.toUri().getPath());
    }

    private FileStatus polar(FileStatus s) {
        return new FileStatus(s.getLen(), s.isDirectory(), 1, s.getBlockSize(),
                s.getModificationTime(), toPolar(s.getPath()));
    }

    @Override
    public FSDataInputStream open(Path f, int bufferSize) throws IOException {
        OPENS.incrementAndGet();
        return local.open(toLocal(f), bufferSize);
    }

    @Override
    public FSDataOutputStream create(Path f, FsPermission permission, boolean overwrite,
                                     int bufferSize, short replication, long blockSize,
                                     Progressable progress) throws IOException {
        return local.create(toLocal(f), permission, overwrite, bufferSize, replication,
                blockSize, progress);
    }

    @Override
    public FSDataOutputStream append(Path f, int bufferSize, Progressable progress)
            throws IOException {
        throw new IOException("append is not supported");
    }

    @Override
    public boolean rename(Path src, Path dst) throws IOException {
        return local.rename(toLocal(src), toLocal(dst));
    }

    @Override
    public boolean delete(Path f, boolean recursive) throws IOException {
        return local.delete(toLocal(f), recursive);
    }

    @Override
    public FileStatus[] listStatus(Path f) throws FileNotFoundException, IOException {
        FileStatus[] in = local.listStatus(toLocal(f));
        FileStatus[] out = new FileStatus[in.length];
        for (int i = 0; i < in.length; i++) {
            out[i] = polar(in[i]);
        }
        return out;
    }

    @Override
    public void setWorkingDirectory(Path dir) {
        workingDir = makeQualified(dir);
    }

    @Override
    public Path getWorkingDirectory() {
        return workingDir;
    }

    @Override
    public boolean mkdirs(Path f, FsPermission permission) throws IOException {
        return local.mkdirs(toLocal(f), permission);
    }

    @Override
    public FileStatus getFileStatus(Path f) throws IOException {
        return polar(local.getFileStatus(toLocal(f)));
    }
}
