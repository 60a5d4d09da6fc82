// The "Watch only" checkbox of the console and the screen: asking for watch-only
// reconnects with ?mode=watch; a token that grants only `watch` has it on and locked.

export function WatchToggle({
  checked,
  locked,
  onChange,
  testId,
}: {
  checked: boolean;
  locked: boolean;
  onChange(checked: boolean): void;
  testId: string;
}) {
  return (
    <label className="watch-toggle" title={locked ? "This token grants watch-only access" : undefined}>
      <input
        type="checkbox"
        data-testid={testId}
        checked={checked}
        disabled={locked}
        onChange={(e) => onChange(e.target.checked)}
      />{" "}
      Watch only
    </label>
  );
}
