"""Cache-line prefetch hints for numba kernels (LLVM's `llvm.prefetch` for reading, into L1 or into L2).

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


def _prefetch_intrinsic(locality: int, doc: str):
    @intrinsic
    def hint(typingctx, matrix, row, col):
        sig = types.void(matrix, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            name = "llvm.prefetch.p0" if str(i8p) == "ptr" else "llvm.prefetch.p0i8"
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), name)
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(locality), i32(1)])
            return context.get_dummy_value()

        return sig, codegen

    hint.__doc__ = doc
    return hint


# LLVM's locality 3 is x86 prefetcht0 (into L1 and below), 2 is prefetcht1 (into L2 and below)
prefetch = _prefetch_intrinsic(3, "Hint the CPU to load the cache line holding matrix[row, col] of a 2-D array.")
prefetch_l2 = _prefetch_intrinsic(
    2, "The same hint into L2 only: for rows streamed in order, where an L1 request holds one of the core's few "
       "L1 miss buffers until the line arrives, an L2 request does not (the decode products' case; decode speed "
       "with it: `benchmarks/bench_quant.py`).")
