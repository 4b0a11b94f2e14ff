import { onnx } from 'onnx-proto';

/** A dimension as a graph declares it: a size, a symbolic name (`{ param: 'n' }`), or unnamed dynamic (`null`). */
export type DeclaredDim = number | { readonly param: string } | null;

/**
 * The ONNX bytes of `model` with the declared shape of input or output `name` replaced: what an exporter
 * writes when it fixes the batch at 1 or leaves a dimension symbolic. Only the declaration changes, not the
 * graph, so a declared shape that the graph cannot take fails when it runs, as a real mis-export does.
 */
export function withDeclaredShape(model: Uint8Array, name: string, dims: readonly DeclaredDim[]): Buffer {
  const proto = onnx.ModelProto.decode(model);
  const graph = proto.graph;
  if (graph === null || graph === undefined) throw new Error('the model has no graph');
  const value = [...(graph.input ?? []), ...(graph.output ?? [])].find((v) => v.name === name);
  const tensor = value?.type?.tensorType;
  if (tensor === null || tensor === undefined) throw new Error(`the model has no tensor value ${name}`);
  tensor.shape = {
    dim: dims.map((d) => (d === null ? {} : typeof d === 'number' ? { dimValue: d } : { dimParam: d.param })),
  };
  return Buffer.from(onnx.ModelProto.encode(proto).finish());
}
