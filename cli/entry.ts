/** Process entry of the `tandem` command (bin/tandem.js loads the compiled copy). */
import { main } from './main.js';

process.exitCode = await main(process.argv);
