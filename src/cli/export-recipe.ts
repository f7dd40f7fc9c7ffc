import { appendFile, chmod, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SPLIT_NAMES } from '../data/types.ts';
import type { ModelFiles } from '../io/files.ts';
import { NodeDirModelFiles } from '../io/node-files.ts';
import {
  copyModelFiles,
  launchScript,
  loadRecipeModel,
  parseRunConfig,
  parseRunPointer,
  parseRunRecords,
  prepareRecipe,
  TRAINER_FILES,
} from '../train/recipe.ts';
import { parseFlags, UsageError, type Command } from './flags.ts';
import { DEMO_MODEL_DIR, modelFiles } from './inputs.ts';

const TRAINER_DIR = fileURLToPath(new URL('../../recipes/torch/', import.meta.url));

const HELP = `Usage: npm run vulnlab -- export-recipe --run DIR --out DIR [options]

Writes a lab run as a PyTorch recipe: config.json (the run config), recipe.json (model, pack length,
separator/pad ids, answer tokens), splits/{train,validation,test}.jsonl (token ids from the lab's
tokenizer, labels, weights, CWE, code), model/ (a copy of the base, or a pointer to its folder),
trainer/ (recipes/torch) and launch.sh (torchrun).

  --run DIR        a run folder written by train (config.json, run.json, data.jsonl)
  --out DIR        the recipe folder (created; must be empty if it exists)
  --model DIR      the base model folder, if it moved since the run (default: run.json's model)
  --copy-model     copy a local base into the recipe (the demo model and Hub models are always copied)

Then: bash OUT/launch.sh  (NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR; trainer flags after it: --help)`;

async function readRunFile(dir: string, name: string): Promise<string> {
  try {
    return await readFile(join(dir, name), 'utf8');
  } catch (error) {
    throw new UsageError(
      `Cannot read ${join(dir, name)}: ${(error as Error).message}`,
      '--run needs a run folder written by `npm run vulnlab -- train` (config.json, run.json, data.jsonl).',
    );
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/**
 * Where the base model is: the demo, a folder (absolute, or relative to the run or the working
 * folder), else a Hugging Face repo id (the trainer cannot download, so the recipe gets a copy).
 */
async function locateModel(
  name: string,
  runDir: string,
  override: string | undefined,
): Promise<{ files: ModelFiles; dir?: string }> {
  if (override) {
    if (!(await isDirectory(override))) throw new UsageError(`--model ${override} is not a folder.`, HELP);
    return { files: new NodeDirModelFiles(resolve(override)), dir: resolve(override) };
  }
  if (name === 'demo') return { files: new NodeDirModelFiles(DEMO_MODEL_DIR) };
  for (const candidate of isAbsolute(name) ? [name] : [resolve(runDir, name), resolve(name)]) {
    if (await isDirectory(candidate)) return { files: new NodeDirModelFiles(candidate), dir: candidate };
  }
  return { files: modelFiles(name) };
}

export const exportRecipe: Command = {
  name: 'export-recipe',
  summary: 'write a run as a PyTorch recipe (torchrun, DDP/FSDP) that trains the same thing',
  help: () => HELP,
  async run(args) {
    const { values } = parseFlags(
      args,
      {
        run: { type: 'string' },
        out: { type: 'string' },
        model: { type: 'string' },
        'copy-model': { type: 'boolean' },
      },
      HELP,
    );
    if (!values.run) throw new UsageError('--run DIR is required.', HELP);
    if (!values.out) throw new UsageError('--out DIR is required.', HELP);
    const runDir = resolve(values.run);
    const out = resolve(values.out);
    if ((await isDirectory(out)) && (await readdir(out)).length > 0) {
      throw new UsageError(`${out} is not empty.`, 'Pick a new or empty --out folder.');
    }

    const config = parseRunConfig(await readRunFile(runDir, 'config.json'), join(runDir, 'config.json'));
    const pointer = parseRunPointer(await readRunFile(runDir, 'run.json'), join(runDir, 'run.json'));
    const records = parseRunRecords(await readRunFile(runDir, pointer.data), join(runDir, pointer.data));
    const located = await locateModel(pointer.model, runDir, values.model);
    const model = await loadRecipeModel(located.files);
    // A local folder other than the demo is pointed at unless asked; the demo (1 MB) and Hub models are copied.
    const copy = !located.dir || Boolean(values['copy-model']);

    const recipe = prepareRecipe(config, records, model, {
      modelName: pointer.model,
      modelPath: copy ? 'model' : located.dir!,
      run: runDir,
    });
    await mkdir(join(out, 'splits'), { recursive: true });
    await mkdir(join(out, 'trainer'), { recursive: true });
    await writeFile(join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    await writeFile(join(out, 'recipe.json'), JSON.stringify(recipe.manifest, null, 2) + '\n');
    for (const split of SPLIT_NAMES)
      await writeFile(join(out, 'splits', `${split}.jsonl`), recipe.splits[split]);
    for (const file of TRAINER_FILES) await copyFile(join(TRAINER_DIR, file), join(out, 'trainer', file));
    let copied = 0;
    if (copy) {
      await mkdir(join(out, 'model'), { recursive: true });
      copied = await copyModelFiles(located.files, model.files, (name, offset, bytes) =>
        offset === 0
          ? writeFile(join(out, 'model', name), bytes)
          : appendFile(join(out, 'model', name), bytes),
      );
    }
    await writeFile(join(out, 'launch.sh'), launchScript({ run: runDir, model: pointer.model }));
    await chmod(join(out, 'launch.sh'), 0o755);

    const sizes = SPLIT_NAMES.map((s) => `${s} ${recipe.data[s].length}`).join(', ');
    const where = copy ? `copied (${(copied / 2 ** 20).toFixed(1)} MiB)` : `at ${located.dir}`;
    console.log(
      `recipe: ${sizes} functions, ${config.objective} objective, packs of ${String(recipe.manifest.packLength)} tokens; model ${where}`,
    );
    console.log(`train it: bash ${join(out, 'launch.sh')}   (trainer flags: --help)`);
  },
};
