"""Train an XGBoost classifier on a table and log it to MLflow, lifecycle contract included.

    mlflow run . -P data=churn.parquet -P target=churned

mlcycle runs this same entry point to retrain, on the training reference plus the labelled
production window (docs/bring-your-own-model.md).
"""

import argparse

import mlflow
import pandas as pd
import xgboost as xgb
from mlflow.models import infer_signature
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

import mlcycle


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="CSV or Parquet table")
    parser.add_argument("--target", required=True, help="the 0/1 column to predict")
    parser.add_argument("--max-depth", type=float, default=4)
    parser.add_argument("--n-estimators", type=float, default=200)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--test-size", type=float, default=0.2)
    args = parser.parse_args()

    df = pd.read_parquet(args.data) if args.data.endswith(".parquet") else pd.read_csv(args.data)
    df = df.dropna(subset=[args.target])
    # This model uses the numeric columns; XGBoost handles their missing values itself.
    features = df.drop(columns=[args.target]).select_dtypes("number").columns
    df = df[[*features, args.target]].astype({c: "float64" for c in features})
    train_df, test_df = train_test_split(
        df, test_size=args.test_size, random_state=42, stratify=df[args.target]
    )
    X_train, y_train = train_df[features], train_df[args.target]
    X_test, y_test = test_df[features], test_df[args.target]

    params = {
        "max_depth": int(args.max_depth),
        "n_estimators": int(args.n_estimators),
        "learning_rate": args.learning_rate,
    }
    # `mlflow run` has started the run; this call picks it up.
    with mlflow.start_run():
        mlflow.log_params(params)
        model = xgb.XGBClassifier(**params, n_jobs=1, random_state=42).fit(X_train, y_train)
        mlflow.log_metrics(
            {
                "test_roc_auc": roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]),
                "test_accuracy": accuracy_score(y_test, model.predict(X_test)),
            }
        )
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, model.predict(X_train)),
            input_example=X_train.head(3),
            model_format="json",  # XGBoost's own format: mlcycle loads it without pickle
            pip_requirements=[f"xgboost=={xgb.__version__}", f"pandas=={pd.__version__}"],
        )
        # The lifecycle contract: target, drift reference and held-out split for the gate.
        mlcycle.log_contract(info, train_df, test_df, target=args.target)


if __name__ == "__main__":
    main()
