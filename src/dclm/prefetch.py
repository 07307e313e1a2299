"""A cache-line prefetch hint for numba kernels (LLVM's `llvm.prefetch`: read, keep in all cache levels).

Shared by the kernels that stream large matrices: fastText scoring (`dclm.classifier.kernels`, rows scattered
over hundreds of MB) and the decode products (`dclm.model.cpu_matmul`, rows read in order, where the
hardware prefetchers alone did not keep a core's reads at the memory's pace on the 2-core Xeon this project
measures on).
A hint only: it changes no value.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, matrix, row, col):
    """Hint the CPU to load the cache line holding matrix[row, col] of a 2-D array."""
    sig = types.void(matrix, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        name = "llvm.prefetch.p0" if str(i8p) == "ptr" else "llvm.prefetch.p0i8"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
