/** Load progress in bytes, per stage, with an ETA for the whole load. */
export type LoadStage = 'metadata' | 'download' | 'convert' | 'upload' | 'done';

export interface LoadProgress {
  stage: LoadStage;
  /** Tensor being processed, when there is one. */
  tensor?: string;
  /** Bytes read from the source (network, file or cache). */
  downloadedBytes: number;
  /** Of `downloadedBytes`, the bytes read from the weight cache instead of the source. */
  cachedBytes: number;
  /** Bytes of source tensors converted/quantized. */
  convertedBytes: number;
  /** Bytes handed to the sink (GPU upload), in the target format. */
  uploadedBytes: number;
  /** Bytes of tensor data to read in total (source format). */
  totalBytes: number;
  tensorsDone: number;
  tensorsTotal: number;
  /** 0..1 over the whole load (mean of the three stages). */
  fraction: number;
  /** Seconds left, from the throughput so far; undefined until there is a measurement. */
  etaSeconds: number | undefined;
  elapsedSeconds: number;
}

export type ProgressCallback = (p: LoadProgress) => void;

/** Keeps the counters and computes fraction and ETA. */
export class ProgressTracker {
  private readonly start: number;
  downloadedBytes = 0;
  cachedBytes = 0;
  convertedBytes = 0;
  uploadedBytes = 0;
  tensorsDone = 0;
  private uploadedTotalEstimate: number;

  constructor(
    readonly totalBytes: number,
    readonly tensorsTotal: number,
    private readonly callback: ProgressCallback | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.start = now();
    this.uploadedTotalEstimate = totalBytes;
  }

  /** The sink total differs from the source total when converting; called once it is known. */
  setUploadTotal(bytes: number): void {
    this.uploadedTotalEstimate = Math.max(1, bytes);
  }

  report(stage: LoadStage, tensor?: string): void {
    if (!this.callback) return;
    const t = Math.max(1, this.totalBytes);
    const fraction =
      stage === 'done'
        ? 1
        : Math.min(
            1,
            (this.downloadedBytes / t +
              this.convertedBytes / t +
              this.uploadedBytes / this.uploadedTotalEstimate) /
              3,
          );
    const elapsedSeconds = (this.now() - this.start) / 1000;
    const etaSeconds =
      stage === 'done'
        ? 0
        : fraction > 0 && elapsedSeconds > 0
          ? (elapsedSeconds * (1 - fraction)) / fraction
          : undefined;
    this.callback({
      stage,
      tensor,
      downloadedBytes: this.downloadedBytes,
      cachedBytes: this.cachedBytes,
      convertedBytes: this.convertedBytes,
      uploadedBytes: this.uploadedBytes,
      totalBytes: this.totalBytes,
      tensorsDone: this.tensorsDone,
      tensorsTotal: this.tensorsTotal,
      fraction,
      etaSeconds,
      elapsedSeconds,
    });
  }
}
