#!/usr/bin/env bash
# npm run lint (npm test runs it, and so .ci/run): eslint, prettier and lit-analyzer.
set -euo pipefail
cd "$(dirname "$0")/.."

# typescript-eslint's recommended rules and no string-to-code (eslint.config.js).
eslint --max-warnings 0 .

# Formatting, on the files .prettierignore does not yet exempt.
prettier --check --log-level warn 'src/**/*.ts' 'tests/**/*.ts' 'bench/**/*.ts' 'demos/**/*.ts' 'types/**/*.ts' '*.ts' '*.js' 'bin/*.js'

# The components' templates: bindings, attributes, events and custom elements. no-invalid-css is
# off because its CSS data predates properties the components use (accent-color, color-scheme);
# the browser tests render the styles.
lit-analyzer --strict --rules.no-invalid-css off 'src/components/**/*.ts'
