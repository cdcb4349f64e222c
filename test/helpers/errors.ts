/** The `code` of what `f` throws (undefined when it returns): for tables of refusals. */
export function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}
