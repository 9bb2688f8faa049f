import { access, readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { ModelCorruptError, ModelMissingError, ModelOutputError, ModelShapeError, InferenceFailedError } from '../errors.js';

/** Where the expected input width comes from, for the error when the model takes another one. */
export interface WidthSource {
  /** Names the source, e.g. "the baseline". */
  name: string;
  /** What to do about a mismatch. */
  fix: string;
}

const FROM_BASELINE: WidthSource = { name: 'the baseline', fix: 'rebuild baseline.json with "modelwatch baseline"' };

/** An ONNX regression model: float32 [N, width] in, [N, 1] out. */
export class OnnxModel {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly file: string,
    readonly width: number,
    readonly inputName: string,
    readonly outputName: string,
  ) {}

  static async load(file: string, width: number, source: WidthSource = FROM_BASELINE): Promise<OnnxModel> {
    try {
      await access(file);
    } catch (cause) {
      throw new ModelMissingError(file, `${(cause as Error).message}; pass --model-dir with a folder holding model.onnx`, { cause });
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(await readFile(file), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    } catch (cause) {
      throw new ModelCorruptError(file, (cause as Error).message, { cause });
    }
    if (session.inputNames.length !== 1 || session.outputNames.length !== 1) {
      await session.release();
      throw new ModelShapeError(file, `expected one input and one output, found inputs [${session.inputNames}] and outputs [${session.outputNames}]`);
    }
    const [input] = session.inputMetadata;
    const declaredWidth = input?.isTensor ? input.shape[1] : undefined;
    if (typeof declaredWidth === 'number' && declaredWidth !== width) {
      await session.release();
      throw new ModelShapeError(file, `it takes ${declaredWidth} features but ${source.name} lists ${width}; ${source.fix}`);
    }
    const [output] = session.outputMetadata;
    const outputShape = output?.isTensor ? output.shape : [];
    if (outputShape.slice(1).some((d) => typeof d === 'number' && d !== 1)) {
      await session.release();
      throw new ModelShapeError(file, `its output is [${outputShape.join(', ')}] but a regression model answers one value per row, [N, 1]`);
    }
    const model = new OnnxModel(session, file, width, session.inputNames[0]!, session.outputNames[0]!);
    // A model whose input width disagrees with the baseline fails here, at start-up, not on the first request.
    try {
      await model.predict(new Float32Array(width), 1);
    } catch (cause) {
      await session.release();
      throw new ModelShapeError(file, `a warm-up row of ${width} features (as ${source.name} lists) failed: ${(cause as Error).message}`, { cause });
    }
    return model;
  }

  /** Runs `rows` rows laid out row-major in `features`; returns one prediction per row. */
  async predict(features: Float32Array, rows: number): Promise<Float32Array> {
    let output: ort.Tensor | undefined;
    try {
      const input = new ort.Tensor('float32', features, [rows, this.width]);
      output = (await this.session.run({ [this.inputName]: input }))[this.outputName];
    } catch (cause) {
      throw new InferenceFailedError((cause as Error).message, { cause });
    }
    if (!output || output.type !== 'float32' || output.data.length !== rows) {
      throw new ModelOutputError(
        `expected float32 [${rows}, 1], got ${output?.type} [${output?.dims.join(', ')}]`,
      );
    }
    return output.data as Float32Array;
  }

  close(): Promise<void> {
    return this.session.release();
  }
}
