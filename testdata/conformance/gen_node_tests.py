"""Write ONNX's backend node tests to a folder, in ONNX's own test layout.

The onnx wheel ships the node test *cases* (Python that builds each model and
computes its expected outputs with NumPy) but not their data, so this script
materialises them: <out>/<test name>/model.onnx and
<out>/<test name>/test_data_set_<k>/{input,output}_<i>.pb, as ONNX's
`backend-test-tools generate-data` does for its model tests.

Random inputs are seeded, so the data is the same on every run of the same
onnx version.

Usage: python gen_node_tests.py OUT_DIR
"""

import os
import shutil
import sys
import warnings

import numpy as np
import onnx
from onnx import numpy_helper


def write_value(path, value, value_info):
    """Serialise one input or output as ONNX's test data does."""
    t = value_info.type
    if t.HasField("map_type"):
        proto = numpy_helper.from_dict(value, value_info.name)
    elif t.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, value_info.name)
    elif t.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, value_info.name)
    elif isinstance(value, onnx.TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(np.asarray(value), value_info.name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    np.random.seed(0)
    # The cases compute some expected outputs through divisions by zero and
    # the like on purpose; their warnings are noise here.
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    import onnx.backend.test.case.node as node

    cases = node.collect_testcases(None)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for case in cases:
        case_dir = os.path.join(out, case.name)
        os.makedirs(case_dir)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        graph = case.model.graph
        for k, (inputs, outputs) in enumerate(case.data_sets):
            set_dir = os.path.join(case_dir, f"test_data_set_{k}")
            os.makedirs(set_dir)
            for i, value in enumerate(inputs):
                write_value(os.path.join(set_dir, f"input_{i}.pb"), value, graph.input[i])
            for i, value in enumerate(outputs):
                write_value(os.path.join(set_dir, f"output_{i}.pb"), value, graph.output[i])
    print(f"wrote {len(cases)} ONNX node tests (onnx {onnx.__version__}) to {out}")


if __name__ == "__main__":
    main()
