import { resolve } from 'node:path';
import type { ModelConfig } from './model-config';
import { loadModelConfig } from './model-config.loader';
import {
  checkModelInterface,
  describeValue,
  interfaceReason,
  type ModelInterface,
  type ValueInfo,
} from './model-interface';

const DEMO = loadModelConfig(resolve(__dirname, '../../../../models/demo-policy'));

const tensor = (name: string, type: string, shape: (number | string)[]): ValueInfo =>
  ({ name, isTensor: true, type, shape }) as ValueInfo;

/** What ONNX Runtime 1.30 reports for the demo model's file (session.inputMetadata / outputMetadata). */
const demoFile = (): { inputs: ValueInfo[]; outputs: ValueInfo[] } => ({
  inputs: [
    tensor('image', 'float32', ['batch', 3, 224, 224]),
    tensor('state', 'float32', ['batch', 8]),
    tensor('tokens', 'int64', ['batch', 16]),
  ],
  outputs: [tensor('actions', 'float32', ['batch', 10, 8])],
});

function withInput(file: ModelInterface, name: string, value: ValueInfo): ModelInterface {
  return { ...file, inputs: file.inputs.map((v) => (v.name === name ? value : v)) };
}

const image0 = DEMO.inputs.images[0];

describe('checkModelInterface', () => {
  it('finds nothing wrong with the demo model and its model.yaml', () => {
    expect(checkModelInterface(DEMO, demoFile())).toEqual([]);
  });

  it('names a tensor the file does not have, with every input the file has', () => {
    const config: ModelConfig = {
      ...DEMO,
      inputs: { ...DEMO.inputs, images: [{ ...image0, tensor: 'img' }] },
    };
    expect(checkModelInterface(config, demoFile())).toEqual([
      {
        field: 'inputs.images[0].tensor',
        message:
          'the file has no input "img"; its inputs are image (float32 [batch,3,224,224]), state (float32 [batch,8]), tokens (int64 [batch,16])',
      },
    ]);
  });

  it('looks for the actions among the outputs, not the inputs', () => {
    const config: ModelConfig = {
      ...DEMO,
      outputs: { actions: { ...DEMO.outputs.actions, tensor: 'state' } },
    };
    expect(checkModelInterface(config, demoFile())).toEqual([
      {
        field: 'outputs.actions.tensor',
        message: 'the file has no output "state"; its outputs are actions (float32 [batch,10,8])',
      },
    ]);
  });

  it('compares horizon and dim with the fixed dimensions of the output', () => {
    const config: ModelConfig = {
      ...DEMO,
      outputs: { actions: { ...DEMO.outputs.actions, dim: 7, mean: undefined, std: undefined } },
    };
    expect(checkModelInterface(config, demoFile())).toEqual([
      {
        field: 'outputs.actions',
        message: 'the file\'s output "actions" is [batch,10,8] but horizon x dim is 10 x 7',
      },
    ]);
  });

  it('reads the image dimensions in the order of the layout', () => {
    const nhwc: ModelConfig = {
      ...DEMO,
      inputs: { ...DEMO.inputs, images: [{ ...image0, layout: 'nhwc' }] },
    };
    expect(checkModelInterface(nhwc, demoFile())).toEqual([
      {
        field: 'inputs.images[0]',
        message:
          'the file\'s input "image" is [batch,3,224,224] but height x width x channels (nhwc) is 224 x 224 x 3',
      },
    ]);
    const grey: ModelConfig = {
      ...DEMO,
      inputs: { ...DEMO.inputs, images: [{ ...image0, channels: 1, mean: [0], std: [1] }] },
    };
    expect(checkModelInterface(grey, demoFile())).toEqual([
      {
        field: 'inputs.images[0]',
        message:
          'the file\'s input "image" is [batch,3,224,224] but channels x height x width (nchw) is 1 x 224 x 224',
      },
    ]);
  });

  it('names the dtype field for an element type the yaml sets, and the tensor for one the server fixes', () => {
    const file = withInput(
      withInput(demoFile(), 'image', tensor('image', 'uint8', ['batch', 3, 224, 224])),
      'state',
      tensor('state', 'float64', ['batch', 8]),
    );
    expect(checkModelInterface(DEMO, file)).toEqual([
      {
        field: 'inputs.images[0].dtype',
        message: 'the file\'s input "image" is uint8 [batch,3,224,224], not float32',
      },
      {
        field: 'inputs.state.tensor',
        message: 'the file\'s input "state" is float64 [batch,8]; the server feeds float32',
      },
    ]);
    const tokens32 = withInput(demoFile(), 'tokens', tensor('tokens', 'int32', ['batch', 16]));
    expect(checkModelInterface(DEMO, tokens32)).toEqual([
      {
        field: 'inputs.instruction.dtype',
        message: 'the file\'s input "tokens" is int32 [batch,16], not int64',
      },
    ]);
  });

  it('says how many dimensions the server feeds when the rank differs', () => {
    const file = withInput(demoFile(), 'state', tensor('state', 'float32', ['batch', 8, 1]));
    expect(checkModelInterface(DEMO, file)).toEqual([
      {
        field: 'inputs.state',
        message:
          'the file\'s input "state" has 3 dimensions [batch,8,1]; the server feeds 2: [batch, size] = [batch,8]',
      },
    ]);
  });

  it('lets a symbolic or unnamed dynamic dimension match any size, and skips a shape the file leaves out', () => {
    const file = withInput(
      withInput(demoFile(), 'image', tensor('image', 'float32', ['N', 'c', '', ''])),
      'state',
      tensor('state', 'float32', []),
    );
    expect(checkModelInterface(DEMO, file)).toEqual([]);
  });

  describe('the batch (first) dimension', () => {
    const fixedOne = withInput(
      withInput(demoFile(), 'image', tensor('image', 'float32', [1, 3, 224, 224])),
      'state',
      tensor('state', 'float32', [1, 8]),
    );

    it('may be fixed at 1 only with max_batch_size 1, said once for every tensor that fixes it', () => {
      expect(checkModelInterface({ ...DEMO, maxBatchSize: 1 }, fixedOne)).toEqual([]);
      expect(checkModelInterface(DEMO, fixedOne)).toEqual([
        {
          field: 'max_batch_size',
          message:
            'is 8, but the file fixes the batch (first) dimension at 1 (image [1,3,224,224], state [1,8]): set max_batch_size: 1, or export the model with a dynamic batch dimension',
        },
      ]);
    });

    it('may not be fixed at any other size', () => {
      const file = withInput(demoFile(), 'tokens', tensor('tokens', 'int64', [8, 16]));
      expect(checkModelInterface(DEMO, file)).toEqual([
        {
          field: 'inputs.instruction',
          message:
            'the file\'s input "tokens" has a fixed batch (first) dimension of 8 [8,16]; the server sends batches of 1 to max_batch_size requests: export it with a dynamic batch dimension',
        },
      ]);
    });
  });

  it('names an input of the file that model.yaml does not feed', () => {
    const file = { ...demoFile(), inputs: [...demoFile().inputs, tensor('mask', 'bool', ['batch', 16])] };
    expect(checkModelInterface(DEMO, file)).toEqual([
      {
        field: 'inputs',
        message:
          "the file's input mask (bool [batch,16]) is fed by no entry of model.yaml; ONNX Runtime needs every input: name it in inputs.images[].tensor, inputs.state.tensor or inputs.instruction.tensor",
      },
    ]);
    const { instruction: _dropped, ...withoutInstruction } = DEMO.inputs;
    expect(checkModelInterface({ ...DEMO, inputs: withoutInstruction }, demoFile())).toEqual([
      expect.objectContaining({
        field: 'inputs',
        message: expect.stringMatching(/^the file's input tokens \(int64/) as string,
      }),
    ]);
  });

  it('refuses a value that is not a tensor', () => {
    const file = withInput(demoFile(), 'state', { name: 'state', isTensor: false });
    expect(checkModelInterface(DEMO, file)).toEqual([
      {
        field: 'inputs.state.tensor',
        message:
          'the file\'s input "state" is not a tensor (a sequence, map or optional value); it must be a float32 tensor',
      },
    ]);
    expect(describeValue({ name: 'state', isTensor: false })).toBe('state (not a tensor)');
  });

  it('joins every problem into one path-free reason', () => {
    expect(
      interfaceReason([
        { field: 'a', message: 'one' },
        { field: 'b', message: 'two' },
      ]),
    ).toBe('model.yaml does not match the model file: a: one; b: two');
  });
});
