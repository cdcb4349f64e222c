/** Shape rules for elementwise operators: unary ones keep their input's shape, n-ary ones broadcast. */
import { broadcast, MAX_FOLDED_ELEMENTS, ruleTable, type Dims, type NodeInference, type ShapeRule } from './infer-context.js';

const SAME_AS_INPUT = [
  'Relu', 'Sigmoid', 'Clip', 'HardSigmoid', 'HardSwish', 'Tanh', 'Exp', 'Log', 'Sqrt', 'Neg', 'Abs', 'Erf', 'LeakyRelu',
  'Elu', 'Selu', 'Softplus', 'Softsign', 'Identity', 'Dropout', 'Cast', 'CastLike', 'Not', 'Floor', 'Ceil', 'Round', 'Reciprocal',
  'BatchNormalization', 'InstanceNormalization', 'LayerNormalization', 'Softmax', 'LogSoftmax', 'LRN', 'Sign', 'Mish', 'Gelu',
  'QuantizeLinear', 'DequantizeLinear', 'ThresholdedRelu', 'Celu', 'Sin', 'Cos', 'IsNaN', 'IsInf', 'Hardmax', 'Shrink',
  'MeanVarianceNormalization', 'GroupNormalization', 'Trilu',
];
const BROADCAST = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Mean', 'Sum', 'Equal', 'Less', 'Greater',
  'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Where', 'PRelu', 'Mod', 'BitShift'];

const sameAsInput: ShapeRule = ({ node, op, out, set, inVals }, x) => {
  set(out, [...x], op === 'Cast' || op === 'Identity' ? inVals(0) : undefined);
  // BatchNormalization in training mode and Dropout have extra outputs we do not size.
  if (op === 'Dropout' && node.outputs[1]) set(node.outputs[1], [...x]);
};

/** Rules that need the first input's dims. */
export const UNARY_RULES = ruleTable<ShapeRule>([[SAME_AS_INPUT, sameAsInput]]);

/** Broadcasts every input (all must be known), folding Add, Sub, Mul and Div of two folded inputs. */
function inferBroadcast({ op, inputNames, out, set, inDims, inVals }: NodeInference): void {
  const shapes = inputNames.map((_, i) => inDims(i));
  if (shapes.some((s) => !s)) return;
  const result = broadcast(shapes as Dims[]);
  const vals = inputNames.map((_, i) => inVals(i));
  let folded: number[] | undefined;
  const count = result.reduce((a, b) => a * b, 1);
  if (vals.every((v) => v) && vals.length === 2 && count <= MAX_FOLDED_ELEMENTS && ['Add', 'Sub', 'Mul', 'Div'].includes(op)) {
    const [a, b] = vals as [number[], number[]];
    folded = [];
    for (let i = 0; i < count; i++) {
      const u = a.length === 1 ? a[0]! : a[i]!;
      const w = b.length === 1 ? b[0]! : b[i]!;
      folded.push(op === 'Add' ? u + w : op === 'Sub' ? u - w : op === 'Mul' ? u * w : Math.trunc(u / w));
    }
    if (folded.some((v) => v === undefined || Number.isNaN(v))) folded = undefined;
  }
  set(out, result, folded);
}

/** Rules that check every input themselves, so the driver does not require the first one. */
export const BROADCAST_RULES = ruleTable<(n: NodeInference) => void>([[BROADCAST, inferBroadcast]]);
