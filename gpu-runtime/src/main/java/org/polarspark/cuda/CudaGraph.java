package org.polarspark.cuda;

import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.JCudaDriver;

/**
 * A captured and instantiated sequence of launches, replayed with one call. Everything the
 * captured kernels read (pointers, scalar arguments) is frozen at capture; only the contents of
 * device buffers may change between replays.
 */
public final class CudaGraph implements AutoCloseable {
    private final CUgraph graph = new CUgraph();
    private final CUgraphExec exec = new CUgraphExec();
    private final String what;
    private boolean closed;

    private CudaGraph(String what) {
        this.what = what;
    }

    /** CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY (cuda.h; JCuda 12.6 has no constant). */
    private static final long USE_NODE_PRIORITY = 8L;

    /** Captures what {@code body} enqueues on {@code stream} (nothing runs during capture). */
    public static CudaGraph capture(CudaStream stream, Runnable body, String what) {
        CudaGraph g = new CudaGraph(what);
        Cuda.check(JCudaDriver.cuStreamBeginCapture(stream.handle(),
                CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                "cuStreamBeginCapture(" + what + ")");
        try {
            body.run();
        } catch (RuntimeException e) {
            JCudaDriver.cuStreamEndCapture(stream.handle(), g.graph); // abandon the capture
            JCudaDriver.cuGraphDestroy(g.graph);
            throw e;
        }
        Cuda.check(JCudaDriver.cuStreamEndCapture(stream.handle(), g.graph),
                "cuStreamEndCapture(" + what + ")");
        // Kernel nodes keep the priority of the stream they were captured from (a side stream's
        // higher one): without this flag a replay would run every node at the launch stream's.
        Cuda.check(JCudaDriver.cuGraphInstantiate(g.exec, g.graph, USE_NODE_PRIORITY),
                "cuGraphInstantiate(" + what + ")");
        return g;
    }

    public void launch(CudaStream stream) {
        Cuda.check(JCudaDriver.cuGraphLaunch(exec, stream.handle()), "cuGraphLaunch(" + what + ")");
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Cuda.check(JCudaDriver.cuGraphExecDestroy(exec), "cuGraphExecDestroy(" + what + ")");
            Cuda.check(JCudaDriver.cuGraphDestroy(graph), "cuGraphDestroy(" + what + ")");
        }
    }
}
