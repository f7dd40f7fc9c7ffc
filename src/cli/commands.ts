import { formatBytes } from '../shared/errors.ts';
import { GLOBAL_FLAGS_HELP, parseFlags, type Command } from './flags.ts';
import { createNodeContext } from '../engine/gpu/node.ts';
import { evaluate } from './eval.ts';
import { scan } from './scan.ts';
import { train } from './train.ts';
import { exportRecipe } from './export-recipe.ts';
import { exportOnnx } from './export-onnx.ts';

const info: Command = {
  name: 'info',
  summary: 'show the WebGPU adapter the engine would use, its features and limits',
  help: () =>
    `Usage: npm run vulnlab -- info [--json] [--kernels cpu|gpu]\n\nEvery command accepts:\n${GLOBAL_FLAGS_HELP}`,
  async run(args) {
    const { values } = parseFlags(args, { json: { type: 'boolean' } }, this.help());
    const ctx = await createNodeContext();
    try {
      if (values.json) {
        console.log(JSON.stringify({ ...ctx.adapter, kernels: ctx.kernels }, null, 2));
        return;
      }
      const a = ctx.adapter;
      console.log(
        `adapter   ${[a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' · ')}`,
      );
      console.log(
        `features  shader-f16 ${a.features.shaderF16 ? 'yes' : 'no'}, subgroups ${a.features.subgroups ? 'yes' : 'no'}, timestamp-query ${a.features.timestampQuery ? 'yes' : 'no'}`,
      );
      console.log(
        `limits    storage binding ${formatBytes(a.limits.maxStorageBufferBindingSize)}, buffer ${formatBytes(a.limits.maxBufferSize)}, workgroup memory ${formatBytes(a.limits.maxComputeWorkgroupStorageSize)}`,
      );
      const byDefault = ctx.kernels === (ctx.cpuAdapter ? 'cpu' : 'gpu');
      console.log(
        `kernels   ${ctx.kernels} (${byDefault ? 'default for a' : `--kernels; default ${ctx.cpuAdapter ? 'cpu' : 'gpu'} for a`} ${ctx.cpuAdapter ? 'CPU-backed adapter' : 'GPU adapter'})`,
      );
    } finally {
      ctx.destroy();
    }
  },
};

export const COMMANDS: Record<string, Command> = {
  info,
  train,
  eval: evaluate,
  scan,
  'export-recipe': exportRecipe,
  'export-onnx': exportOnnx,
};
