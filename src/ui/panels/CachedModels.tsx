import { useEffect, useState } from 'react';
import type { CacheListing, SerializedError } from '../../worker/protocol.ts';
import { ErrorBox } from '../errors.tsx';
import { formatBytes, formatPercent } from '../format.ts';
import { asSerialized, engineClient, useLab } from '../store.ts';

/** Hub models kept (converted) in this browser, the storage the site uses, and a way to free it. */
export function CachedModels() {
  const modelStatus = useLab((s) => s.model.status);
  const savedCount = useLab((s) => s.saved.length);
  const [listing, setListing] = useState<CacheListing>();
  const [error, setError] = useState<SerializedError>();
  const [busy, setBusy] = useState(false);
  /** Bumped after a deletion, to list again. */
  const [version, setVersion] = useState(0);

  // Listed again after each load (a Hub model may have been cached) and when saved runs change.
  useEffect(() => {
    if (modelStatus === 'loading') return;
    let current = true;
    engineClient()
      .request({ type: 'listCache' })
      .then(
        (next) => {
          if (!current) return;
          setListing(next);
          setError(undefined);
        },
        (e: unknown) => current && setError(asSerialized(e)),
      );
    return () => {
      current = false;
    };
  }, [modelStatus, savedCount, version]);

  const remove = async (key: CacheListing['models'][number]['key']) => {
    setBusy(true);
    try {
      await engineClient().request({ type: 'deleteCache', key });
    } catch (e) {
      setError(asSerialized(e));
    }
    setBusy(false);
    setVersion((v) => v + 1);
  };

  return (
    <section aria-labelledby="model-cache" data-testid="model-cache">
      <h3 id="model-cache">Stored in this browser</h3>
      {listing?.storage ? (
        <p data-testid="storage-usage">
          This site uses {formatBytes(listing.storage.usage)} of {formatBytes(listing.storage.quota)} (
          {formatPercent(listing.storage.usage / Math.max(1, listing.storage.quota))}) the browser allows it
          {listing.checkpointBytes > 0 &&
            `; checkpoints of interrupted runs take ${formatBytes(listing.checkpointBytes)} (Train panel)`}
          .
        </p>
      ) : (
        listing && <p className="muted">The browser does not say how much storage this site may use.</p>
      )}
      {listing && !listing.store && (
        <p className="muted">This browser offers no storage for models: Hub models download at each load.</p>
      )}
      {listing && listing.store && listing.models.length === 0 && (
        <p className="muted">
          No cached models. Models loaded from the Hub are kept here, converted, so a reload does not download
          them again.
        </p>
      )}
      {listing && listing.models.length > 0 && (
        <div className="table-scroll">
          <table data-testid="cached-models">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Revision</th>
                <th scope="col">Format</th>
                <th scope="col">Size</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span className="sr-only">Delete</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {listing.models.map((m) => (
                <tr key={`${m.key.repo}@${m.key.revision}@${m.key.fileHash}@${m.key.weightFormat}`}>
                  <th scope="row">{m.key.repo}</th>
                  <td>{m.key.revision.slice(0, 12)}</td>
                  <td>{m.key.weightFormat}</td>
                  <td>{formatBytes(m.bytes)}</td>
                  <td>
                    {m.complete
                      ? `complete${m.createdAt ? `, ${new Date(m.createdAt).toLocaleDateString()}` : ''}`
                      : `partial (${m.tensors} tensors): the next load resumes it`}
                  </td>
                  <td>
                    <button
                      type="button"
                      disabled={busy}
                      aria-label={`delete the cached ${m.key.repo} (${m.key.weightFormat})`}
                      onClick={() => void remove(m.key)}
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {error && <ErrorBox error={error} testId="model-cache-error" />}
    </section>
  );
}
