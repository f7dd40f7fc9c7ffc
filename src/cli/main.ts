/**
 * `npm run vulnlab -- <command>`: the lab's engine on the command line (Node + Dawn).
 * Exit codes: 0 success, 1 failure while running, 2 usage error (bad flag, config or input file);
 * `scan` exits 3 when it flags a method.
 */
import { VulnLabError } from '../shared/errors.ts';
import { COMMANDS } from './commands.ts';
import { UsageError, type Command } from './flags.ts';

function printHelp(): void {
  console.log('Usage: npm run vulnlab -- <command> [options]\n\nCommands:');
  for (const command of Object.values(COMMANDS))
    console.log(`  ${command.name.padEnd(14)} ${command.summary}`);
  console.log('\n`npm run vulnlab -- <command> --help` shows a command’s options.');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    printHelp();
    return name ? 0 : 2;
  }
  const command: Command | undefined = COMMANDS[name];
  if (!command) {
    console.error(`Unknown command "${name}". Commands: ${Object.keys(COMMANDS).join(', ')}.`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help());
    return 0;
  }
  try {
    return (await command.run(rest)) ?? 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`vulnlab ${name}: ${error.message}\n${error.hint}`);
      return 2;
    }
    if (error instanceof VulnLabError) {
      console.error(`vulnlab ${name}: ${error.message}\n  → ${error.hint}`);
      return error.code === 'bad-input' ? 2 : 1;
    }
    console.error(`vulnlab ${name} failed:`, error);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
