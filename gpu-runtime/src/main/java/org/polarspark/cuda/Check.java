package org.polarspark.cuda;

/** Launcher precondition checks: IllegalArgumentException naming the kernel and the shapes. */
final class Check {
    private Check() {
    }

    static void that(boolean ok, String kernel, String what) {
        if (!ok) {
            throw new IllegalArgumentException(kernel + ": " + what);
        }
    }

    static void positive(String kernel, String name, long v) {
        that(v > 0, kernel, name + " must be > 0, got " + v);
    }

    /** The buffer holds at least {@code elems} elements of {@code elemBytes}. */
    static void fits(String kernel, String name, DeviceBuffer b, long elems, int elemBytes) {
        if (b == null) {
            throw new IllegalArgumentException(kernel + ": " + name + " is null");
        }
        long need = elems * elemBytes;
        that(b.bytes() >= need, kernel, name + " (" + b.name() + ") holds " + b.bytes()
                + " bytes but " + need + " are needed (" + elems + " x " + elemBytes + ")");
    }

    static void fitsOrNull(String kernel, String name, DeviceBuffer b, long elems, int elemBytes) {
        if (b != null) {
            fits(kernel, name, b, elems, elemBytes);
        }
    }
}
